import { isZkError } from './errors.js';
import type { ZkSession } from './zk-session.js';

/**
 * Subtree listing and recursive delete. The library's own `listSubTreeBFS` and
 * `removeRecursive` are broken since its async@3 upgrade (they see part of the tree and then
 * fail with NOT_EMPTY, upstream issue #127), so sched does its own: breadth-first listing with
 * bounded parallelism, and deletes from the leaves up.
 */

const PARALLEL = 16;

function join(parent: string, child: string): string {
  return parent === '/' ? `/${child}` : `${parent}/${child}`;
}

async function inParallel<T>(
  items: readonly T[],
  limit: number,
  fn: (item: T) => Promise<void>,
): Promise<void> {
  let next = 0;
  const workers = Array.from({ length: Math.min(limit, items.length) }, async () => {
    while (next < items.length) {
      const item = items[next++] as T;
      await fn(item);
    }
  });
  await Promise.all(workers);
}

/**
 * Every node under `root`, `root` first, parents before their children (breadth-first
 * levels, each level sorted). Nodes that vanish while listing are skipped. `[]` when `root`
 * does not exist.
 */
export async function listSubtree(session: ZkSession, root: string): Promise<string[]> {
  if (!(await session.exists(root))) return [];
  const out: string[] = [root];
  let level = [root];
  while (level.length > 0) {
    const nextLevel: string[] = [];
    await inParallel(level, PARALLEL, async (path) => {
      try {
        const { children } = await session.getChildren(path);
        for (const c of children) nextLevel.push(join(path, c));
      } catch (err) {
        if (!isZkError(err, 'NO_NODE')) throw err;
      }
    });
    nextLevel.sort();
    out.push(...nextLevel);
    level = nextLevel;
  }
  return out;
}

/**
 * Deletes `root` and everything under it. Nodes already gone are fine; a node that gains a
 * child while we delete (NOT_EMPTY) is listed again, a bounded number of times.
 * @returns how many nodes this call deleted
 */
export async function removeRecursive(
  session: ZkSession,
  root: string,
  opts: { attempts?: number } = {},
): Promise<number> {
  const attempts = opts.attempts ?? 5;
  let removed = 0;
  for (let attempt = 1; ; attempt++) {
    const nodes = await listSubtree(session, root);
    if (nodes.length === 0) return removed;
    // Group by depth and delete the deepest level first; siblings in parallel.
    const byDepth = new Map<number, string[]>();
    for (const n of nodes) {
      const depth = n.split('/').length;
      byDepth.set(depth, [...(byDepth.get(depth) ?? []), n]);
    }
    const depths = [...byDepth.keys()].sort((a, b) => b - a);
    try {
      for (const depth of depths) {
        await inParallel(byDepth.get(depth) ?? [], PARALLEL, async (path) => {
          try {
            await session.remove(path);
            removed++;
          } catch (err) {
            if (!isZkError(err, 'NO_NODE')) throw err;
          }
        });
      }
      return removed;
    } catch (err) {
      if (!isZkError(err, 'NOT_EMPTY') || attempt >= attempts) throw err;
    }
  }
}
