import type { RouteContext, RoutingStrategy } from './routing-strategy.js';
import { ScopedMemory } from './scoped-memory.js';
import type { WorkerView } from './worker-view.js';

/**
 * `weighted-round-robin`: nginx's smooth weighted round-robin (ngx_http_upstream_round_robin.c),
 * weights from the workers' heartbeats. Each decision adds every worker's weight to its current
 * weight, picks the highest current weight (the first in stable order on a tie, as nginx does)
 * and subtracts the total weight from the winner. Over any window of `sum(weights)` decisions
 * each worker is chosen exactly `weight` times, interleaved rather than in bursts: weights
 * 1:2:5 give c b c a c c b c.
 *
 * Current weights live per scope and per worker key; a worker that leaves loses its entry, one
 * that joins starts at 0. Workers with weight ≤ 0 are never the first choice while any worker has
 * a positive weight; they stay at the end of the order as last-resort fallbacks.
 * After the choice, the others follow by descending current weight (whoever is "owed" most).
 */
export class WeightedRoundRobinStrategy implements RoutingStrategy {
  readonly name = 'weighted-round-robin' as const;
  private readonly currentWeights = new ScopedMemory<Map<string, number>>(() => new Map());

  order(ctx: RouteContext): WorkerView[] {
    const current = this.currentWeights.get(ctx.scope);
    const present = new Set(ctx.candidates.map((c) => c.key));
    for (const key of current.keys()) if (!present.has(key)) current.delete(key);

    const weighted = ctx.candidates.filter((c) => effectiveWeight(c) > 0);
    const unweighted = ctx.candidates.filter((c) => effectiveWeight(c) <= 0);
    if (weighted.length === 0) return [...unweighted];

    let total = 0;
    let best: WorkerView | undefined;
    let bestWeight = Number.NEGATIVE_INFINITY;
    for (const c of weighted) {
      const w = effectiveWeight(c);
      const cw = (current.get(c.key) ?? 0) + w;
      current.set(c.key, cw);
      total += w;
      if (cw > bestWeight) {
        best = c;
        bestWeight = cw;
      }
    }
    const chosen = best as WorkerView;
    current.set(chosen.key, bestWeight - total);

    const rest = weighted
      .filter((c) => c.key !== chosen.key)
      .sort((a, b) => (current.get(b.key) ?? 0) - (current.get(a.key) ?? 0));
    return [chosen, ...rest, ...unweighted];
  }
}

function effectiveWeight(w: WorkerView): number {
  return Number.isFinite(w.weight) ? Math.floor(w.weight) : 0;
}
