import { readdir, readFile, stat } from 'node:fs/promises';
import { basename, extname, join } from 'node:path';
import { DefinitionError, type Issue } from '@sched/core';
import { parseAllDocuments } from 'yaml';
import type { WorkflowDefinition } from './definition-types.js';
import { validateDefinition } from './validate-definition.js';

/**
 * Turns definition sources (text of YAML/JSON files, a folder) into compiled definitions, all or
 * nothing: one DefinitionError lists every problem of every document, and nothing is compiled
 * (so nothing is written) when there is any.
 */

export interface DefinitionSource {
  /** Shown in front of paths when more than one document is involved (`jobs.yaml#2`). */
  label: string;
  text: string;
}

const EXTENSIONS = ['.yaml', '.yml', '.json'];

/** Parses every document of every source; returns raw documents with their labels, or issues. */
function parseSources(sources: DefinitionSource[]): {
  docs: { label: string; value: unknown }[];
  issues: Issue[];
} {
  const docs: { label: string; value: unknown }[] = [];
  const issues: Issue[] = [];
  for (const src of sources) {
    const parsed = parseAllDocuments(src.text, { prettyErrors: false });
    const list = Array.isArray(parsed) ? parsed : [parsed];
    let n = 0;
    for (const doc of list) {
      n += 1;
      const label = `${src.label}#${n}`;
      if (doc.errors.length > 0) {
        for (const e of doc.errors)
          issues.push({ path: label, message: `not valid YAML/JSON: ${e.message.split('\n')[0]}` });
        continue;
      }
      const value = doc.toJS({ maxAliasCount: 100 });
      if (value === null || value === undefined) continue; // an empty document (trailing `---`)
      docs.push({ label, value });
    }
  }
  return { docs, issues };
}

/** Validates raw definitions (already-parsed objects); throws one DefinitionError listing everything wrong. */
export function compileDefinitions(raw: { label?: string; value: unknown }[]): WorkflowDefinition[] {
  const issues: Issue[] = [];
  const out: WorkflowDefinition[] = [];
  const seen = new Map<string, string>();
  const prefixed = raw.length > 1;
  raw.forEach((doc, i) => {
    const prefix = prefixed ? (doc.label ?? `[${i}]`) : '';
    const result = validateDefinition(doc.value, prefix);
    if (!result.ok) {
      issues.push(...result.issues);
      return;
    }
    const where = prefix || 'name';
    const other = seen.get(result.definition.name);
    if (other !== undefined) {
      issues.push({
        path: prefix ? `${prefix}.name` : where,
        message: `workflow "${result.definition.name}" is defined twice (also ${other})`,
      });
      return;
    }
    seen.set(result.definition.name, prefix || `document ${i + 1}`);
    out.push(result.definition);
  });
  if (raw.length === 0) issues.push({ path: '', message: 'no workflow definitions found' });
  if (issues.length > 0) {
    throw new DefinitionError(
      `invalid workflow definition${issues.length > 1 ? 's' : ''} (${issues.length} problem${issues.length > 1 ? 's' : ''}); nothing was applied`,
      issues,
    );
  }
  return out;
}

/** Compiles definitions from source texts (one or several YAML/JSON documents each). */
export function compileDefinitionSources(sources: DefinitionSource[]): WorkflowDefinition[] {
  const { docs, issues } = parseSources(sources);
  if (issues.length > 0) {
    throw new DefinitionError(
      `invalid workflow definition file (${issues.length} problem${issues.length > 1 ? 's' : ''}); nothing was applied`,
      issues,
    );
  }
  return compileDefinitions(docs);
}

/** Reads a file or every .yaml/.yml/.json file of a folder (sorted by name) and compiles them all. */
export async function loadDefinitionPath(path: string): Promise<WorkflowDefinition[]> {
  const info = await stat(path);
  const files = info.isDirectory()
    ? (await readdir(path))
        .filter((f) => EXTENSIONS.includes(extname(f).toLowerCase()))
        .sort()
        .map((f) => join(path, f))
    : [path];
  const sources: DefinitionSource[] = [];
  for (const f of files) sources.push({ label: basename(f), text: await readFile(f, 'utf8') });
  if (sources.length === 0) {
    throw new DefinitionError(`no .yaml, .yml or .json files in ${path}`, [
      { path, message: 'no definition files' },
    ]);
  }
  return compileDefinitionSources(sources);
}
