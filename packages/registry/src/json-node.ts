import type { z } from 'zod';
import { ZnodeDataError } from './errors.js';
import type { ZnodeStat } from './stat.js';
import type { CreateModeName, Watcher, ZkSession } from './zk-session.js';

/**
 * JSON znode data with a schema check on every read: what another process (or an older
 * version of sched, or an operator with zkCli) wrote is validated before anything acts on
 * it, and a mismatch is a `ZnodeDataError` naming the znode and the bad fields.
 */

export function encodeJson(value: unknown): Buffer {
  return Buffer.from(JSON.stringify(value), 'utf8');
}

export function decodeJson<S extends z.ZodType>(path: string, data: Buffer, schema: S): z.output<S> {
  let raw: unknown;
  try {
    raw = JSON.parse(data.toString('utf8'));
  } catch (err) {
    throw new ZnodeDataError(path, `not JSON (${data.length} bytes)`, { cause: err });
  }
  const parsed = schema.safeParse(raw);
  if (!parsed.success) {
    const problems = parsed.error.issues
      .map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`)
      .join('; ');
    throw new ZnodeDataError(path, `unexpected content: ${problems}`, { cause: parsed.error });
  }
  return parsed.data;
}

export async function readJson<S extends z.ZodType>(
  session: ZkSession,
  path: string,
  schema: S,
  watcher?: Watcher,
): Promise<{ value: z.output<S>; stat: ZnodeStat }> {
  const { data, stat } = await session.getData(path, watcher);
  return { value: decodeJson(path, data, schema), stat };
}

export async function createJson<S extends z.ZodType>(
  session: ZkSession,
  path: string,
  schema: S,
  value: z.input<S>,
  mode: CreateModeName = 'persistent',
): Promise<string> {
  return session.create(path, encodeJson(schema.parse(value)), { mode });
}

/** Writes `value` (checked against `schema`); conditional on `version` when ≥ 0. */
export async function writeJson<S extends z.ZodType>(
  session: ZkSession,
  path: string,
  schema: S,
  value: z.input<S>,
  version = -1,
): Promise<ZnodeStat> {
  return session.setData(path, encodeJson(schema.parse(value)), version);
}
