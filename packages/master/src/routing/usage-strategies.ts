import type { RouteContext, RoutingStrategy } from './routing-strategy.js';
import { ScopedMemory } from './scoped-memory.js';
import type { WorkerView } from './worker-view.js';

/**
 * `least-frequently-used`: per scope, how many times each worker was chosen; the least chosen
 * goes first (stable order breaks ties). A worker that joins starts at the current minimum, so it
 * takes its share from now on instead of receiving every task until it has "caught up".
 */
export class LeastFrequentlyUsedStrategy implements RoutingStrategy {
  readonly name = 'least-frequently-used' as const;
  private readonly counts = new ScopedMemory<Map<string, number>>(() => new Map());

  order(ctx: RouteContext): WorkerView[] {
    const counts = this.counts.get(ctx.scope);
    const present = new Set(ctx.candidates.map((c) => c.key));
    for (const key of counts.keys()) if (!present.has(key)) counts.delete(key);
    const known = [...counts.values()];
    const floor = known.length > 0 ? Math.min(...known) : 0;
    for (const c of ctx.candidates) if (!counts.has(c.key)) counts.set(c.key, floor);

    const ordered = stableSortBy(ctx.candidates, (c) => counts.get(c.key) ?? 0);
    const chosen = ordered[0] as WorkerView;
    counts.set(chosen.key, (counts.get(chosen.key) ?? 0) + 1);
    return ordered;
  }
}

/**
 * `least-recently-used`: per scope, when each worker was last chosen (a decision sequence number,
 * not a clock); the one chosen longest ago, or never, goes first.
 */
export class LeastRecentlyUsedStrategy implements RoutingStrategy {
  readonly name = 'least-recently-used' as const;
  private readonly lastUsed = new ScopedMemory<{ seq: number; at: Map<string, number> }>(() => ({
    seq: 0,
    at: new Map(),
  }));

  order(ctx: RouteContext): WorkerView[] {
    const memory = this.lastUsed.get(ctx.scope);
    const present = new Set(ctx.candidates.map((c) => c.key));
    for (const key of memory.at.keys()) if (!present.has(key)) memory.at.delete(key);

    const ordered = stableSortBy(ctx.candidates, (c) => memory.at.get(c.key) ?? -1);
    const chosen = ordered[0] as WorkerView;
    memory.seq += 1;
    memory.at.set(chosen.key, memory.seq);
    return ordered;
  }
}

/** Sorted ascending by `score`; equal scores keep their input order. */
export function stableSortBy<T>(items: readonly T[], score: (item: T) => number): T[] {
  return items
    .map((item, index) => ({ item, index, s: score(item) }))
    .sort((a, b) => a.s - b.s || a.index - b.index)
    .map((e) => e.item);
}
