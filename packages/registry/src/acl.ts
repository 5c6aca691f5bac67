import { createHash } from 'node:crypto';
import { SchedError } from '@sched/core';
import zookeeper from 'node-zookeeper-client';

/**
 * Digest ACLs (ZooKeeper's `digest` scheme). When sched is configured with `zk.auth`
 * (`user:password`), every znode it creates gets these ACLs: full rights for that identity
 * only (world-read only when asked for, `aclWorldReadable`) — an unauthenticated or wrongly
 * authenticated client cannot create, change or delete anything under them
 * (docs/security.md#zookeeper).
 */
export type ZkAcl = zookeeper.ACL;

export interface DigestAuth {
  user: string;
  password: string;
}

/** Parses `user:password`; the password may itself contain `:`. */
export function parseDigestAuth(value: string, path = 'zk.auth'): DigestAuth {
  const at = value.indexOf(':');
  if (at <= 0 || at === value.length - 1) {
    throw new SchedError(
      'CONFIG_INVALID',
      `${path}: expected "user:password" (both non-empty), got a value without them`,
    );
  }
  return { user: value.slice(0, at), password: value.slice(at + 1) };
}

/** The digest id ZooKeeper compares against: `user:base64(sha1(user:password))`. */
export function digestId(auth: DigestAuth): string {
  const hash = createHash('sha1').update(`${auth.user}:${auth.password}`).digest('base64');
  return `${auth.user}:${hash}`;
}

/** ACLs for sched's znodes with `auth`: all rights for `auth`, read for the world when `worldReadable`. */
export function schedAcls(auth: DigestAuth, worldReadable: boolean): ZkAcl[] {
  const acls = [new zookeeper.ACL(zookeeper.Permission.ALL, new zookeeper.Id('digest', digestId(auth)))];
  if (worldReadable)
    acls.push(new zookeeper.ACL(zookeeper.Permission.READ, new zookeeper.Id('world', 'anyone')));
  return acls;
}

/** `world:anyone` with all rights: ZooKeeper's default, used without auth. */
export const OPEN_ACL: ZkAcl[] = (zookeeper.ACL as unknown as { OPEN_ACL_UNSAFE: ZkAcl[] }).OPEN_ACL_UNSAFE;

/** ZooKeeper's permission bits. */
export const ZK_PERMS = { READ: 1, WRITE: 2, CREATE: 4, DELETE: 8, ADMIN: 16, ALL: 31 } as const;

/** The permission bits of an ACL entry (the runtime field is `permission`; the typings say `perms`). */
export function aclPerms(acl: ZkAcl): number {
  const a = acl as unknown as { permission?: number; perms?: number };
  return a.permission ?? a.perms ?? 0;
}

/** What an ACL means for sched, seen by the identity `ownDigestId` (undefined: no credentials). */
export type AclState =
  /** `world:anyone` may do more than read: anyone can create, change or delete. */
  | 'open'
  /** Not open, and `ownDigestId` has every right. */
  | 'own'
  /** Not open, and `ownDigestId` (or a client without credentials) lacks some right. */
  | 'foreign';

export function aclState(acls: readonly ZkAcl[], ownDigestId: string | undefined): AclState {
  const open = acls.some(
    (a) => a.id.scheme === 'world' && a.id.id === 'anyone' && (aclPerms(a) & ~ZK_PERMS.READ) !== 0,
  );
  if (open) return 'open';
  const own =
    ownDigestId !== undefined &&
    acls.some(
      (a) =>
        a.id.scheme === 'digest' && a.id.id === ownDigestId && (aclPerms(a) & ZK_PERMS.ALL) === ZK_PERMS.ALL,
    );
  return own ? 'own' : 'foreign';
}

/** Whether two ACL lists grant the same (order ignored). */
export function sameAcls(a: readonly ZkAcl[], b: readonly ZkAcl[]): boolean {
  const key = (x: ZkAcl) => `${x.id.scheme}:${x.id.id}=${aclPerms(x)}`;
  const ka = a.map(key).sort();
  const kb = b.map(key).sort();
  return ka.length === kb.length && ka.every((k, i) => k === kb[i]);
}

/**
 * An ACL for messages: `digest:sched=cdrwa, world:anyone=r`. A digest id is shown by its user
 * only (the rest is the password's SHA-1, of no use to the reader and of use to a guesser).
 */
export function formatAcls(acls: readonly ZkAcl[]): string {
  const letters: [number, string][] = [
    [ZK_PERMS.CREATE, 'c'],
    [ZK_PERMS.DELETE, 'd'],
    [ZK_PERMS.READ, 'r'],
    [ZK_PERMS.WRITE, 'w'],
    [ZK_PERMS.ADMIN, 'a'],
  ];
  return acls
    .map((a) => {
      const who = a.id.scheme === 'digest' ? `digest:${a.id.id.split(':')[0]}` : `${a.id.scheme}:${a.id.id}`;
      const perms = letters.map(([bit, l]) => (aclPerms(a) & bit ? l : '')).join('');
      return `${who}=${perms || '-'}`;
    })
    .join(', ');
}
