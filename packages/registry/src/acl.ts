import { createHash } from 'node:crypto';
import { SchedError } from '@sched/core';
import zookeeper from 'node-zookeeper-client';

/**
 * Digest ACLs (ZooKeeper's `digest` scheme). When sched is configured with `zk.auth`
 * (`user:password`), every znode it creates gets these ACLs: full rights for that identity
 * and, unless disabled, read-only for everyone else (so ops tools can look without the
 * password) — an unauthenticated client cannot create, change or delete anything under them.
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
