import { readdir, readFile, stat } from 'node:fs/promises';
import { basename, extname, join, resolve } from 'node:path';
import { DefinitionError } from '@sched/core';
import { compileDefinitionSources, type DefinitionSource, type WorkflowDefinition } from '@sched/store';

/**
 * Reads `-f FILE|DIR` the way the master will compile it: a file (several YAML documents allowed)
 * or every `.yaml`/`.yml`/`.json` of a folder, sorted. Everything is validated here first, so a
 * bad file fails before anything is sent (and the master validates again, all or nothing).
 */
const EXTENSIONS = ['.yaml', '.yml', '.json'];

export async function readDefinitionSources(
  path: string,
): Promise<{ sources: DefinitionSource[]; definitions: WorkflowDefinition[] }> {
  const full = resolve(path);
  let info: Awaited<ReturnType<typeof stat>>;
  try {
    info = await stat(full);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new DefinitionError(`cannot read ${full}`, [
      { path: full, message: code === 'ENOENT' ? 'no such file or folder' : (err as Error).message },
    ]);
  }
  const files = info.isDirectory()
    ? (await readdir(full))
        .filter((f) => EXTENSIONS.includes(extname(f).toLowerCase()))
        .sort()
        .map((f) => join(full, f))
    : [full];
  if (files.length === 0) {
    throw new DefinitionError(`no .yaml, .yml or .json files in ${full}`, [
      { path: full, message: 'no definition files' },
    ]);
  }
  const sources: DefinitionSource[] = [];
  for (const f of files) sources.push({ label: basename(f), text: await readFile(f, 'utf8') });
  return { sources, definitions: compileDefinitionSources(sources) };
}
