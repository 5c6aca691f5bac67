import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { ConfigError } from '@sched/core';

/**
 * `.sched-data/standalone.json`, written by `sched-standalone` in the folder it runs from, so that
 * `sched-ctl` in the same folder finds the standalone cluster with no variables set
 * (docs/cli.md#finding-the-cluster). Format (all fields strings, all optional):
 *
 *   { "zk": "127.0.0.1:40123", "dbUrl": "postgres://…", "secret": "…", "root": "/sched",
 *     "zkAuth": "sched:…" }
 *
 * `zkAuth` is the ZooKeeper digest credentials `sched-standalone` generated (SCHED_ZK_AUTH); the
 * generated PostgreSQL password is in `dbUrl` (and in `pgPassword`, which sched-ctl does not read).
 */
const STANDALONE_FILE = join('.sched-data', 'standalone.json');

export interface StandaloneInfo {
  zk?: string;
  dbUrl?: string;
  secret?: string;
  root?: string;
  zkAuth?: string;
}

const FIELDS: { key: keyof StandaloneInfo; env: string }[] = [
  { key: 'zk', env: 'SCHED_ZK' },
  { key: 'dbUrl', env: 'SCHED_DB_URL' },
  { key: 'secret', env: 'SCHED_CLUSTER_SECRET' },
  { key: 'root', env: 'SCHED_ZK_ROOT' },
  { key: 'zkAuth', env: 'SCHED_ZK_AUTH' },
];

/** Reads the file in `dir`; undefined when there is none. A malformed file is a ConfigError naming it. */
export function readStandaloneInfo(dir: string = process.cwd()): StandaloneInfo | undefined {
  const file = resolve(dir, STANDALONE_FILE);
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new ConfigError(`cannot read ${file}`, [{ path: file, message: (err as Error).message }]);
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    throw new ConfigError(`${file} is not valid JSON`, [{ path: file, message: (err as Error).message }]);
  }
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    throw new ConfigError(`${file} must hold a JSON object`, [
      { path: file, message: 'expected { "zk", "dbUrl", "secret", "root", "zkAuth" }' },
    ]);
  }
  const out: StandaloneInfo = {};
  const issues = [];
  for (const { key } of FIELDS) {
    const v = (value as Record<string, unknown>)[key];
    if (v === undefined) continue;
    if (typeof v !== 'string')
      issues.push({ path: `${file}: ${key}`, message: `expected a string, got ${typeof v}` });
    else out[key] = v;
  }
  if (issues.length > 0) throw new ConfigError(`${file} is malformed`, issues);
  return out;
}

/**
 * The environment with the standalone values underneath: a variable that is set (non-empty)
 * wins over the file — and so does its `_FILE` variant for a secret (`SCHED_CLUSTER_SECRET_FILE`),
 * which loadConfig reads — and flags win over both (they are applied later by loadConfig).
 */
export function environmentWithStandalone(
  env: Record<string, string | undefined>,
  info: StandaloneInfo | undefined,
): Record<string, string | undefined> {
  if (!info) return env;
  const out = { ...env };
  for (const { key, env: name } of FIELDS) {
    const v = info[key];
    const unset = (n: string) => out[n] === undefined || out[n] === '';
    if (v !== undefined && unset(name) && unset(`${name}_FILE`)) out[name] = v;
  }
  return out;
}
