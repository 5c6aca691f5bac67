import { type Logger, SchedError } from '@sched/core';
import { type AclState, aclState, formatAcls, sameAcls, type ZkAcl } from './acl.js';
import { isZkError, type ZkError } from './errors.js';
import { ensureLayout } from './layout.js';
import type { RegistryPaths } from './registry-paths.js';
import type { ZkSession } from './zk-session.js';

/**
 * The ACLs of sched's tree (docs/security.md#zookeeper): checking them when a daemon starts,
 * and migrating a tree created without credentials (every znode `world:anyone`, all rights) to
 * the digest ACL of the configured credentials — `sched-ctl zk secure`, a daemon that finds its
 * tree open, and `sched-standalone` for a tree an earlier version left open.
 */

const PARALLEL = 16;

function join(parent: string, child: string): string {
  return parent === '/' ? `/${child}` : `${parent}/${child}`;
}

async function inParallel<T>(items: readonly T[], fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  const workers = Array.from({ length: Math.min(PARALLEL, items.length) }, async () => {
    while (next < items.length) await fn(items[next++] as T);
  });
  await Promise.all(workers);
}

export interface ZnodeAcl {
  path: string;
  /** undefined when ZooKeeper refused to show it (NO_AUTH: no READ or ADMIN for this session). */
  acl: ZkAcl[] | undefined;
  state: AclState;
  /** Hex session id owning an ephemeral node (a live member, candidate or lock holder). */
  ephemeralOwner: string | undefined;
}

/** One node's ACL as this session sees it; undefined when the node does not exist. */
export async function readZnodeAcl(session: ZkSession, path: string): Promise<ZnodeAcl | undefined> {
  try {
    const { acl, stat } = await session.getAcl(path);
    return { path, acl, state: aclState(acl, session.digestId), ephemeralOwner: stat.ephemeralOwner };
  } catch (err) {
    if (isZkError(err, 'NO_NODE')) return undefined;
    if (isZkError(err, 'NO_AUTH')) {
      const stat = await session.exists(path);
      if (!stat) return undefined;
      return { path, acl: undefined, state: 'foreign', ephemeralOwner: stat.ephemeralOwner };
    }
    throw err;
  }
}

/**
 * Every node under `root` (`root` included, parents first) with its ACL. A node whose children
 * this session may not list is reported, its subtree is not.
 */
export async function readTreeAcls(session: ZkSession, root: string): Promise<ZnodeAcl[]> {
  const out: ZnodeAcl[] = [];
  let level = [root];
  while (level.length > 0) {
    const next: string[] = [];
    await inParallel(level, async (path) => {
      const node = await readZnodeAcl(session, path);
      if (!node) return;
      out.push(node);
      if (node.ephemeralOwner) return; // ephemerals have no children
      try {
        const { children } = await session.getChildren(path);
        for (const c of children) next.push(join(path, c));
      } catch (err) {
        if (!isZkError(err, 'NO_NODE') && !isZkError(err, 'NO_AUTH')) throw err;
      }
    });
    next.sort();
    level = next;
  }
  return out.sort((a, b) => depth(a.path) - depth(b.path) || a.path.localeCompare(b.path));
}

const depth = (path: string) => path.split('/').length;

export interface SecureTreeOptions {
  /**
   * Also lock out live nodes that registered without credentials (open ephemeral znodes): they
   * can no longer refresh their heartbeats or re-register. Without it, such nodes make the
   * migration refuse, changing nothing. @defaultValue false
   */
  force?: boolean;
  /** Report what would change, change nothing. @defaultValue false */
  dryRun?: boolean;
}

export interface SecureTreeResult {
  root: string;
  /** The ACL set (as `formatAcls` shows it). */
  acl: string;
  /** Nodes whose ACL was (with `dryRun`: would be) replaced. */
  changed: string[];
  /** Nodes that already had the ACL. */
  unchanged: number;
  /** Open ephemeral nodes of live sessions without credentials (members, candidates, lock holders). */
  openEphemerals: string[];
  /** True when nothing was changed because of `openEphemerals` (and no `force`). */
  refused: boolean;
  /** Nodes whose ACL this session may not change (another identity's, without ADMIN for us). */
  failed: { path: string; reason: string }[];
}

/**
 * Sets the session's ACL (`session.acls`: the digest ACL of its credentials) on `root` and every
 * node under it whose ACL differs. Race-free against clients without credentials: each node's ACL
 * is set before its children are listed, so a child created by them afterwards cannot exist.
 * Refuses (changes nothing) while open ephemeral nodes of live sessions exist, unless `force`.
 * @throws SchedError ZK_NO_CREDENTIALS when the session has no credentials.
 */
export async function secureTree(
  session: ZkSession,
  root: string,
  opts: SecureTreeOptions = {},
): Promise<SecureTreeResult> {
  if (!session.digestId) {
    throw new SchedError(
      'ZK_NO_CREDENTIALS',
      'securing the ZooKeeper tree needs the credentials to protect it with: set SCHED_ZK_AUTH=user:password',
    );
  }
  const target = session.acls;
  const result: SecureTreeResult = {
    root,
    acl: formatAcls(target),
    changed: [],
    unchanged: 0,
    openEphemerals: [],
    refused: false,
    failed: [],
  };
  const before = await readTreeAcls(session, root);
  result.openEphemerals = before
    .filter((n) => n.state === 'open' && n.ephemeralOwner && n.ephemeralOwner !== session.sessionId)
    .map((n) => n.path);
  if (result.openEphemerals.length > 0 && !opts.force) {
    result.refused = true;
    return result;
  }
  if (opts.dryRun) {
    for (const n of before) {
      if (n.acl && sameAcls(n.acl, target)) result.unchanged += 1;
      else if (n.acl) result.changed.push(n.path);
      else result.failed.push({ path: n.path, reason: 'NO_AUTH: its ACL is hidden from these credentials' });
    }
    return result;
  }
  // Breadth-first: set a node's ACL, then list its children.
  let level = (await session.exists(root)) ? [root] : [];
  while (level.length > 0) {
    const next: string[] = [];
    await inParallel(level, async (path) => {
      let ephemeral = false;
      try {
        const { acl, stat } = await session.getAcl(path);
        ephemeral = stat.ephemeralOwner !== undefined;
        if (sameAcls(acl, target)) result.unchanged += 1;
        else {
          await session.setAcl(path, target);
          result.changed.push(path);
        }
      } catch (err) {
        if (isZkError(err, 'NO_NODE')) return;
        if (!isZkError(err, 'NO_AUTH')) throw err;
        result.failed.push({
          path,
          reason: 'NO_AUTH: protected by other credentials (these have no ADMIN right on it)',
        });
      }
      if (ephemeral) return;
      try {
        const { children } = await session.getChildren(path);
        for (const c of children) next.push(join(path, c));
      } catch (err) {
        if (!isZkError(err, 'NO_NODE') && !isZkError(err, 'NO_AUTH')) throw err;
      }
    });
    next.sort();
    level = next;
  }
  result.changed.sort((a, b) => depth(a) - depth(b) || a.localeCompare(b));
  return result;
}

export interface SecureLayoutOptions {
  logger?: Logger;
  /** Who is asking, for messages. @defaultValue 'this daemon' */
  who?: string;
}

export interface SecureLayoutResult {
  /** Nodes migrated from open to the digest ACL (empty when the tree was already protected). */
  migrated: string[];
}

/**
 * What a daemon does first in ZooKeeper (docs/security.md#zookeeper): lays out the tree
 * (`ensureLayout`) and checks the ACLs of the root and its persistent parents against its
 * credentials.
 *
 * - With credentials: parents that are its own are fine. An **open** tree (created without
 *   credentials) is migrated at once (`secureTree`), and logged, unless a live node registered
 *   without credentials (an open ephemeral znode): then it refuses, telling the operator to give
 *   that node credentials or run `sched-ctl zk secure --force`. A tree protected by **other**
 *   credentials is refused.
 * - Without credentials (`zk.insecure`): an open tree is fine; a protected one is refused (the
 *   daemon could not register in it).
 * @throws SchedError `ZK_TREE_OPEN`, `ZK_TREE_PROTECTED` (codes for callers; messages for operators).
 */
export async function ensureSecureLayout(
  session: ZkSession,
  paths: RegistryPaths,
  opts: SecureLayoutOptions = {},
): Promise<SecureLayoutResult> {
  const who = opts.who ?? 'this daemon';
  const root = paths.root;
  try {
    await ensureLayout(session, paths);
  } catch (err) {
    if (!isZkError(err, 'NO_AUTH')) throw err;
    throw protectedError(who, root, session, [await readZnodeAcl(session, err.path ?? root)], err);
  }
  const nodes = [root, paths.failoverFinishNodes, ...paths.parents];
  const acls = (await Promise.all(nodes.map((p) => readZnodeAcl(session, p)))).filter(
    (n): n is ZnodeAcl => n !== undefined,
  );
  const foreign = acls.filter((n) => n.state === 'foreign');
  if (!session.digestId) {
    if (acls.some((n) => n.state !== 'open')) {
      throw protectedError(
        who,
        root,
        session,
        acls.filter((n) => n.state !== 'open'),
      );
    }
    return { migrated: [] };
  }
  if (foreign.length > 0) throw protectedError(who, root, session, foreign);
  if (!acls.some((n) => n.state === 'open')) return { migrated: [] };

  const result = await secureTree(session, root);
  if (result.refused) {
    throw new SchedError(
      'ZK_TREE_OPEN',
      `the ZooKeeper tree ${root} is open (created without credentials: anyone who reaches ZooKeeper ` +
        `can change it), and ${result.openEphemerals.length} live node(s) registered in it without credentials ` +
        `(${result.openEphemerals.slice(0, 5).join(', ')}${result.openEphemerals.length > 5 ? ', …' : ''}); ` +
        `${who} will not lock them out. Restart those nodes with SCHED_ZK_AUTH set to the same credentials ` +
        `(or stop them), then start this one again — it secures the tree itself; or lock them out now with ` +
        '`sched-ctl zk secure --force` (SCHED_ZK_AUTH set). Docs: docs/operations.md#zookeeper-credentials',
    );
  }
  if (result.failed.length > 0) {
    throw new SchedError(
      'ZK_TREE_PROTECTED',
      `the ZooKeeper tree ${root} was open and has been partly secured, but ${result.failed.length} znode(s) ` +
        `could not be (${result.failed
          .slice(0, 5)
          .map((f) => f.path)
          .join(', ')}): they are protected by other credentials. Check SCHED_ZK_AUTH against the ` +
        "cluster's credentials, then run `sched-ctl zk secure`",
    );
  }
  opts.logger?.warn(
    { root, znodes: result.changed.length, acl: result.acl },
    `the ZooKeeper tree ${root} was open (created without credentials): set the digest ACL ${result.acl} ` +
      `on ${result.changed.length} znode(s); nodes without SCHED_ZK_AUTH can no longer join this cluster`,
  );
  return { migrated: result.changed };
}

function protectedError(
  who: string,
  root: string,
  session: ZkSession,
  nodes: (ZnodeAcl | undefined)[],
  cause?: ZkError,
): SchedError {
  const shown = nodes
    .filter((n): n is ZnodeAcl => n !== undefined)
    .slice(0, 3)
    .map((n) => `${n.path}: ${n.acl ? formatAcls(n.acl) : 'ACL hidden from these credentials'}`)
    .join('; ');
  const what = session.digestId
    ? `protected by other ZooKeeper credentials than SCHED_ZK_AUTH (user "${session.digestId.split(':')[0]}")`
    : 'protected by digest credentials, and this process has none (it runs with --insecure-zk)';
  return new SchedError(
    'ZK_TREE_PROTECTED',
    `the ZooKeeper tree ${root} is ${what}${shown ? ` (${shown})` : ''}; ${who} cannot register there. ` +
      "Set SCHED_ZK_AUTH to the cluster's credentials (the ones its daemons use)",
    { cause },
  );
}
