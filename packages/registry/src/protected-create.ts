import { randomUUID } from 'node:crypto';
import { SessionLostError } from '@sched/core';
import type { ZkAcl } from './acl.js';
import { isZkError } from './errors.js';
import type { ZkSession } from './zk-session.js';

/**
 * Protected sequential creates (Curator's `withProtection()`, the ZooKeeper recipes' "guid"
 * rule). A create can succeed on the server while its reply is lost with the connection; a
 * blind retry would then leave two sequential nodes, e.g. two election candidates of one
 * process, one of them an orphan that wins the election some day and never acts.
 *
 * So the node's name starts with a guid (`{guid}-{suffix}`, the server appends the
 * sequence), and after a connection-level failure we look among the parent's children for
 * our guid before trying again. The session must be the same one: a node of a lost session
 * is (or will be) deleted by the server, so the search is meaningless then and the error
 * propagates.
 */

export interface ProtectedCreateOptions {
  data?: Buffer;
  mode?: 'ephemeral-sequential' | 'persistent-sequential';
  acl?: ZkAcl[];
  /** How many times a connection-level failure is retried. @defaultValue 5 */
  attempts?: number;
  /** Use this guid instead of a random one (tests). */
  guid?: string;
}

export interface ProtectedNode {
  /** Full path of the created node. */
  path: string;
  /** Its name (last path segment). */
  name: string;
  guid: string;
  sequence: number;
}

/** Parses `{guid}-{suffix}{10-digit sequence}`; `undefined` if the name is not of that shape. */
export function parseSequentialName(name: string): { guid: string; sequence: number } | undefined {
  const m = /^([0-9a-f-]{36})-.*?(\d{10})$/.exec(name);
  if (!m) return undefined;
  return { guid: m[1] as string, sequence: Number(m[2]) };
}

/** Creates `{parent}/{guid}-{suffix}NNNNNNNNNN` exactly once. */
export async function protectedCreate(
  session: ZkSession,
  parent: string,
  suffix: string,
  opts: ProtectedCreateOptions = {},
): Promise<ProtectedNode> {
  const guid = opts.guid ?? randomUUID();
  const prefix = `${guid}-${suffix}`;
  const attempts = opts.attempts ?? 5;
  const generation = session.generation;
  for (let attempt = 1; ; attempt++) {
    try {
      const created = await session.create(`${parent}/${prefix}`, opts.data, {
        mode: opts.mode ?? 'ephemeral-sequential',
        acl: opts.acl,
      });
      if (session.generation !== generation) {
        // Made in a newer session than the caller asked for: an orphan its caller would not track.
        await session.remove(created).catch(() => {});
        throw new SessionLostError(`session replaced while creating ${parent}/${prefix}`);
      }
      return describe(parent, created.slice(created.lastIndexOf('/') + 1), guid);
    } catch (err) {
      const unsure = isZkError(err, 'CONNECTION_LOSS') || (err as { code?: string }).code === 'TIMEOUT';
      if (!unsure || attempt >= attempts || session.generation !== generation) throw err;
    }
    // The create may have happened: find it before trying again.
    const found = await findByGuid(session, parent, guid);
    if (found) return found;
  }
}

/** The child of `parent` whose name starts with `guid`, if any. */
export async function findByGuid(
  session: ZkSession,
  parent: string,
  guid: string,
): Promise<ProtectedNode | undefined> {
  for (let attempt = 1; ; attempt++) {
    try {
      const { children } = await session.getChildren(parent);
      const name = children.find((c) => c.startsWith(`${guid}-`));
      return name === undefined ? undefined : describe(parent, name, guid);
    } catch (err) {
      const unsure = isZkError(err, 'CONNECTION_LOSS') || (err as { code?: string }).code === 'TIMEOUT';
      if (!unsure || attempt >= 5) throw err;
    }
  }
}

function describe(parent: string, name: string, guid: string): ProtectedNode {
  const parsed = parseSequentialName(name);
  return { path: `${parent}/${name}`, name, guid, sequence: parsed?.sequence ?? -1 };
}
