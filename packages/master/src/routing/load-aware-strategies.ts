import type { RouteContext, RoutingStrategy } from './routing-strategy.js';
import { stableSortBy } from './usage-strategies.js';
import { hasFreeCapacity, type WorkerView } from './worker-view.js';

/**
 * `failover`: the first healthy worker in stable order. Healthy means it accepts work (the router
 * has already removed BUSY/DRAINING ones) and no dispatch to it failed recently; workers that did
 * fail recently are kept at the end, in order, as a last resort.
 */
export const failoverStrategy: RoutingStrategy = {
  name: 'failover',
  order: (ctx: RouteContext) => {
    const healthy = ctx.candidates.filter((c) => !ctx.recentlyFailed(c.key));
    const failing = ctx.candidates.filter((c) => ctx.recentlyFailed(c.key));
    return [...healthy, ...failing];
  },
};

/**
 * `busyover`: the first worker, in stable order, with a free slot according to its heartbeat
 * (`running < capacity`). Full workers are left out entirely: the dispatch waits rather than
 * queueing behind a full worker. (The worker enforces its capacity itself as well; the master
 * adds what it dispatched since the last heartbeat to `running`.)
 */
export const busyoverStrategy: RoutingStrategy = {
  name: 'busyover',
  order: (ctx: RouteContext) => ctx.candidates.filter(hasFreeCapacity),
};

/**
 * Load score of a worker, lower is better, in [0, 1]: task-slot usage weighs most (it is what the
 * worker refuses on), then CPU, memory and normalised load average. Each input is clamped to 0..1.
 */
export function loadScore(w: WorkerView): number {
  const slots = w.capacity > 0 ? w.running / w.capacity : 1;
  return 0.4 * clamp01(slots) + 0.2 * clamp01(w.cpu) + 0.2 * clamp01(w.memory) + 0.2 * clamp01(w.load);
}

/** `lowest-load`: every candidate, least loaded first (`loadScore`); ties keep stable order. */
export const lowestLoadStrategy: RoutingStrategy = {
  name: 'lowest-load',
  order: (ctx: RouteContext) => stableSortBy(ctx.candidates, loadScore),
};

function clamp01(x: number): number {
  if (!Number.isFinite(x)) return 1;
  return Math.min(1, Math.max(0, x));
}
