import { existsSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { parseDocument } from 'yaml';
import type { z } from 'zod';
import {
  type ConfigSetting,
  configSchema,
  configSections,
  configSettings,
  type SchedConfig,
} from './config-schema.js';
import { ConfigError, type Issue } from './errors.js';

export type { SchedConfig } from './config-schema.js';

/**
 * Loads sched's configuration from its sources, by precedence:
 *   flags  >  environment (`SCHED_*`)  >  file (YAML or JSON)  >  defaults.
 * All sources are merged first and validated once, so every problem, whatever its source,
 * is reported together in one ConfigError; problems in values from the environment name
 * the variable as well as the path.
 */
export interface LoadConfigOptions {
  /** YAML or JSON file (YAML parses both). Relative paths are resolved from the working directory. */
  file?: string;
  /**
   * Environment variables. @defaultValue `process.env` (pass `{}` to ignore the environment).
   * Empty values count as unset. Unknown `SCHED_*` names are ignored: tasks receive
   * `SCHED_RUN_ID` and the like, which are not configuration. Secrets may instead name a file
   * (`SCHED_CLUSTER_SECRET_FILE`, …; setting both is an error) or come from a systemd credential in
   * `CREDENTIALS_DIRECTORY` of this environment (`secretFileTable()`): read once, here.
   */
  env?: Record<string, string | undefined>;
  /** Flags, keys dotted (`{ 'zk.connect': '…' }`) or nested (`{ zk: { connect: '…' } }`); `undefined` values are ignored. */
  flags?: Record<string, unknown>;
}

type Tree = Record<string, unknown>;

/** Environment variable → setting path, in documentation order. */
export function envTable(): { env: string; path: string }[] {
  return configSettings()
    .filter((s): s is ConfigSetting & { doc: { env: string } } => s.doc.env !== undefined)
    .map((s) => ({ env: s.doc.env, path: s.path }));
}

/**
 * The secret settings that may also come from a file (docs/security.md#secrets): `SCHED_X_FILE`
 * next to `SCHED_X`, and the systemd credential (`LoadCredential=`) read from
 * `$CREDENTIALS_DIRECTORY/<credential>`.
 */
export function secretFileTable(): { env: string; fileEnv: string; credential: string; path: string }[] {
  return configSettings().flatMap((s) =>
    s.doc.env !== undefined && s.doc.credential !== undefined
      ? [{ env: s.doc.env, fileEnv: `${s.doc.env}_FILE`, credential: s.doc.credential, path: s.path }]
      : [],
  );
}

/**
 * The variables a daemon removes from its own environment once its configuration is loaded
 * (`scrubSecretEnvironment`): the secrets, their `_FILE` variants and `CREDENTIALS_DIRECTORY`.
 */
export function secretEnvironmentNames(): string[] {
  return [...secretFileTable().flatMap((s) => [s.env, s.fileEnv]), 'CREDENTIALS_DIRECTORY'];
}

/**
 * Deletes the secret-bearing variables (`secretEnvironmentNames()`) from `env` (by default the
 * process's own), so child processes — tasks, the task supervisor, embedded servers — never
 * inherit them. Call it after `loadConfig`. It cannot change what the kernel shows as the
 * process's own initial environment (`/proc/<pid>/environ`): only the `_FILE` variants and
 * systemd credentials keep a secret out of that. Returns the names it removed.
 */
export function scrubSecretEnvironment(env: Record<string, string | undefined> = process.env): string[] {
  const removed: string[] = [];
  for (const name of secretEnvironmentNames()) {
    if (name in env) {
      delete env[name];
      removed.push(name);
    }
  }
  return removed;
}

/** A secret read from a file: trailing line breaks (`echo secret > file`) are not part of it. */
function readSecretFile(file: string): string {
  return readFileSync(file, 'utf8').replace(/[\r\n]+$/, '');
}

/**
 * The environment's value for each setting, with where it came from (`SCHED_X`, `SCHED_X_FILE`
 * or the systemd credential). Secrets given twice (`SCHED_X` and `SCHED_X_FILE`), and files that
 * cannot be read or are empty, are issues. `skip` holds the paths flags set: their files are not read.
 */
function environmentValues(
  environment: Record<string, string | undefined>,
  skip: ReadonlySet<string>,
): { values: { path: string; value: string; source: string }[]; issues: Issue[] } {
  const set = (name: string) => {
    const v = environment[name];
    return v === undefined || v === '' ? undefined : v;
  };
  const files = new Map(secretFileTable().map((s) => [s.path, s]));
  const credentials = set('CREDENTIALS_DIRECTORY');
  const values: { path: string; value: string; source: string }[] = [];
  const issues: Issue[] = [];
  for (const { env, path } of envTable()) {
    const value = set(env);
    const secret = files.get(path);
    if (secret === undefined || skip.has(path)) {
      if (value !== undefined) values.push({ path, value, source: env });
      continue;
    }
    const fileName = set(secret.fileEnv);
    if (value !== undefined && fileName !== undefined) {
      issues.push({
        path,
        source: `${env} and ${secret.fileEnv}`,
        message: `both are set; set one (${secret.fileEnv} names a file holding the value)`,
      });
      continue;
    }
    if (value !== undefined) {
      values.push({ path, value, source: env });
      continue;
    }
    let file: string | undefined;
    let source: string;
    if (fileName !== undefined) {
      file = resolve(fileName);
      source = secret.fileEnv;
    } else if (credentials !== undefined && existsSync(join(credentials, secret.credential))) {
      // Under systemd, a credential the unit does not load is simply not there.
      file = join(credentials, secret.credential);
      source = `systemd credential ${secret.credential}`;
    } else {
      continue;
    }
    let content: string;
    try {
      content = readSecretFile(file);
    } catch (err) {
      issues.push({ path, source, message: `cannot read ${file}: ${describeFsError(err)}` });
      continue;
    }
    if (content === '') {
      issues.push({ path, source, message: `${file} is empty` });
      continue;
    }
    values.push({ path, value: content, source: `${source} (${file})` });
  }
  return { values, issues };
}

export function loadConfig(opts: LoadConfigOptions = {}): SchedConfig {
  const merged: Tree = opts.file === undefined ? {} : readConfigFile(opts.file);
  const flags = opts.flags === undefined ? undefined : expandDotted(opts.flags);
  const flagPaths = new Set(flags === undefined ? [] : leafPaths(flags));

  // path → environment variable (or secret file), for values the environment set and flags did not override.
  const envSourced = new Map<string, string>();
  const fromEnvironment = environmentValues(opts.env ?? process.env, flagPaths);
  for (const { path, value, source } of fromEnvironment.values) {
    setPath(merged, path.split('.'), value);
    envSourced.set(path, source);
  }

  if (flags !== undefined) {
    deepMerge(merged, flags);
    for (const path of flagPaths) {
      for (const envPath of [...envSourced.keys()]) {
        if (envPath === path || envPath.startsWith(`${path}.`)) envSourced.delete(envPath);
      }
    }
  }

  const result = configSchema.safeParse(merged);
  if (result.success && fromEnvironment.issues.length === 0) return result.data;

  const issues = [
    ...fromEnvironment.issues,
    ...(result.success ? [] : result.error.issues.flatMap((issue) => toIssues(issue, merged, envSourced))),
  ];
  const where = opts.file === undefined ? '' : ` (config file ${resolve(opts.file)})`;
  throw new ConfigError(
    `invalid configuration${where}: ${issues.length} problem${issues.length === 1 ? '' : 's'}`,
    issues,
  );
}

/** Reads and parses a config file into a plain object. Missing, unreadable or malformed files are ConfigErrors naming the file. */
export function readConfigFile(file: string): Tree {
  const full = resolve(file);
  let text: string;
  try {
    text = readFileSync(full, 'utf8');
  } catch (err) {
    throw new ConfigError(`cannot read config file ${full}`, [{ path: '', message: describeFsError(err) }], {
      cause: err,
    });
  }
  const doc = parseDocument(text, { prettyErrors: true, uniqueKeys: true });
  if (doc.errors.length > 0) {
    throw new ConfigError(
      `config file ${full} is not valid YAML or JSON`,
      doc.errors.map((e) => ({
        path: '',
        // With prettyErrors the first line ends in " at line L, column C:"; the position is put first instead.
        message: `${e.linePos ? `line ${e.linePos[0].line}, column ${e.linePos[0].col}: ` : ''}${(e.message.split('\n')[0] ?? '').replace(/ at line \d+, column \d+:?$/, '')}`,
      })),
    );
  }
  const value: unknown = withoutNulls(doc.toJS());
  if (value === undefined) return {}; // an empty file (or only comments): all defaults
  if (!isPlainObject(value)) {
    throw new ConfigError(`config file ${full} must hold a mapping of sections (zk, db, node, …)`, [
      { path: '', message: `found ${Array.isArray(value) ? 'a list' : typeof value} at the top level` },
    ]);
  }
  return value;
}

function describeFsError(err: unknown): string {
  const code = (err as NodeJS.ErrnoException)?.code;
  switch (code) {
    case 'ENOENT':
      return 'no such file (ENOENT)';
    case 'EACCES':
    case 'EPERM':
      return `permission denied (${code})`;
    case 'EISDIR':
      return 'is a directory, expected a file (EISDIR)';
    default:
      return err instanceof Error ? err.message : String(err);
  }
}

/** A YAML key with no value (`zk:` with all its lines commented out) means "not set", not null. */
function withoutNulls(value: unknown): unknown {
  if (value === null) return undefined;
  if (Array.isArray(value)) return value.map(withoutNulls);
  if (isPlainObject(value)) {
    const out: Tree = {};
    for (const [k, v] of Object.entries(value)) {
      const w = withoutNulls(v);
      if (w !== undefined) out[k] = w;
    }
    return out;
  }
  return value;
}

function isPlainObject(value: unknown): value is Tree {
  return value !== null && typeof value === 'object' && !Array.isArray(value);
}

/**
 * Sets `keys` in `tree`, creating sections as needed. A section that holds something other
 * than a mapping (a file's `zk: 127.0.0.1:2181`) is left alone, so that mistake is reported
 * rather than silently replaced.
 */
function setPath(tree: Tree, keys: string[], value: unknown): void {
  let node = tree;
  for (const key of keys.slice(0, -1)) {
    if (node[key] === undefined) node[key] = {};
    const next = node[key];
    if (!isPlainObject(next)) return;
    node = next;
  }
  node[keys[keys.length - 1]!] = value;
}

/** `{ 'zk.connect': x, node: { port: 1 } }` → `{ zk: { connect: x }, node: { port: 1 } }`, dropping undefined values. */
function expandDotted(flags: Record<string, unknown>): Tree {
  const out: Tree = {};
  for (const [key, value] of Object.entries(flags)) {
    if (value === undefined) continue;
    const tree: Tree = {};
    setPath(tree, key.split('.'), isPlainObject(value) ? expandDotted(value) : value);
    deepMerge(out, tree);
  }
  return out;
}

/**
 * Merges `source` into `target`: mappings key by key, anything else replaced. As in
 * `setPath`, a non-mapping where `source` has a section is kept so its mistake is reported.
 */
function deepMerge(target: Tree, source: Tree): void {
  for (const [key, value] of Object.entries(source)) {
    const existing = target[key];
    if (isPlainObject(value) && isPlainObject(existing)) deepMerge(existing, value);
    else if (isPlainObject(value) && existing !== undefined) continue;
    else target[key] = isPlainObject(value) ? structuredClone(value) : value;
  }
}

/** Dotted paths of the non-object values in a tree. */
function leafPaths(tree: Tree, prefix = ''): string[] {
  return Object.entries(tree).flatMap(([key, value]) => {
    const path = prefix ? `${prefix}.${key}` : key;
    return isPlainObject(value) ? leafPaths(value, path) : [path];
  });
}

function pathText(path: readonly PropertyKey[]): string {
  let out = '';
  for (const p of path) {
    if (typeof p === 'number') out += `[${p}]`;
    else out += out ? `.${String(p)}` : String(p);
  }
  return out;
}

/** Turns one zod issue into sched issues: one per unknown key, each naming what is accepted there. */
function toIssues(issue: z.core.$ZodIssue, input: Tree, sourceOf: Map<string, string>): Issue[] {
  if (issue.code === 'unrecognized_keys') {
    const accepted = acceptedKeys(issue.path);
    return issue.keys.map((key) => ({
      path: pathText([...issue.path, key]),
      message: `unknown key${accepted ? `; accepted here: ${accepted.join(', ')}` : ''}`,
    }));
  }
  const path = pathText(issue.path);
  let message = issue.message;
  if (issue.code === 'invalid_type' && issue.expected === 'object') {
    const value = valueAt(input, issue.path);
    message = `expected a mapping of settings, got ${Array.isArray(value) ? 'a list' : typeof value}`;
  }
  const env = sourceOf.get(path);
  return [env === undefined ? { path, message } : { path, message, source: env }];
}

function valueAt(tree: Tree, path: readonly PropertyKey[]): unknown {
  let node: unknown = tree;
  for (const key of path)
    node = node !== null && typeof node === 'object' ? (node as Tree)[key as string] : undefined;
  return node;
}

function acceptedKeys(path: readonly PropertyKey[]): string[] | undefined {
  if (path.length === 0) return Object.keys(configSections);
  if (path.length === 1) {
    const section = configSections[path[0] as keyof typeof configSections];
    return section ? Object.keys(section.shape) : undefined;
  }
  return undefined;
}
