import { type Clock, systemClock, withDefaults } from '@sched/core';
import { ConsistentHashStrategy } from './consistent-hash.js';
import { busyoverStrategy, failoverStrategy, lowestLoadStrategy } from './load-aware-strategies.js';
import { firstStrategy, lastStrategy, RoundRobinStrategy, randomStrategy } from './positional-strategies.js';
import type { RouteContext, RoutingStrategy, RoutingStrategyName } from './routing-strategy.js';
import { LeastFrequentlyUsedStrategy, LeastRecentlyUsedStrategy } from './usage-strategies.js';
import { WeightedRoundRobinStrategy } from './weighted-round-robin.js';
import { compareWorkers, isAcceptingWork, type WorkerView } from './worker-view.js';

export interface RouteRequest {
  strategy: RoutingStrategyName;
  /** Worker group the task runs in; only workers listing it are candidates. */
  group: string;
  /** Whose memory stateful strategies use, usually `workflow/task`. */
  scope: string;
  /** Consistent-hash key; defaults to `scope`. */
  hashKey?: string;
}

export interface ShardTarget {
  worker: WorkerView;
  shardIndex: number;
  shardTotal: number;
}

/** Why a plan has no target, for logs and the run's "waiting for a worker" message. */
export type NoTargetReason = 'no-worker-in-group' | 'no-worker-accepting' | 'no-worker-with-free-capacity';

/**
 * The outcome of routing one task.
 * - `ordered`: dispatch to `targets[0]`; if it refuses or cannot be reached, try the next, and so on.
 * - `broadcast` (sharding-broadcast): dispatch one attempt to every target, each with its shard.
 * Either list may be empty; then `reason` says why and the task waits for the next try.
 */
export type RoutePlan =
  | { mode: 'ordered'; strategy: RoutingStrategyName; targets: WorkerView[]; reason?: NoTargetReason }
  | { mode: 'broadcast'; strategy: 'sharding-broadcast'; shards: ShardTarget[]; reason?: NoTargetReason };

export interface WorkerRouterOptions {
  /** Uniform in [0, 1). @defaultValue Math.random */
  random?: () => number;
  clock?: Clock;
  /** Virtual nodes per worker on the consistent-hash ring. @defaultValue 100 */
  virtualNodes?: number;
  /** How long a failed dispatch marks a worker unhealthy for `failover`. @defaultValue 30000 */
  failureCooldownMs?: number;
}

export const DEFAULT_WORKER_ROUTER_OPTIONS = {
  virtualNodes: 100,
  failureCooldownMs: 30_000,
} as const satisfies Required<Pick<WorkerRouterOptions, 'virtualNodes' | 'failureCooldownMs'>>;

/**
 * Chooses workers for tasks. Pure apart from each strategy's per-scope memory and the record of
 * recent dispatch failures; the caller passes the live worker list (from the registry) each time.
 *
 * Candidate set, for every strategy: workers whose `groups` include the task's group and whose
 * state is NORMAL (BUSY and DRAINING are skipped), in stable order (address, then key), so every
 * master agrees on positions and shard indexes.
 */
export class WorkerRouter {
  private readonly random: () => number;
  private readonly clock: Clock;
  private readonly failureCooldownMs: number;
  private readonly failedAt = new Map<string, number>();
  private readonly strategies: Record<Exclude<RoutingStrategyName, 'sharding-broadcast'>, RoutingStrategy>;

  constructor(options: WorkerRouterOptions = {}) {
    const opts = withDefaults(options, DEFAULT_WORKER_ROUTER_OPTIONS);
    this.random = opts.random ?? Math.random;
    this.clock = opts.clock ?? systemClock;
    this.failureCooldownMs = opts.failureCooldownMs;
    this.strategies = {
      first: firstStrategy,
      last: lastStrategy,
      'round-robin': new RoundRobinStrategy(),
      random: randomStrategy,
      'weighted-round-robin': new WeightedRoundRobinStrategy(),
      'consistent-hash': new ConsistentHashStrategy(opts.virtualNodes),
      'least-frequently-used': new LeastFrequentlyUsedStrategy(),
      'least-recently-used': new LeastRecentlyUsedStrategy(),
      failover: failoverStrategy,
      busyover: busyoverStrategy,
      'lowest-load': lowestLoadStrategy,
    };
  }

  route(workers: readonly WorkerView[], req: RouteRequest): RoutePlan {
    const inGroup = workers.filter((w) => w.groups.includes(req.group));
    const candidates = inGroup.filter(isAcceptingWork).sort(compareWorkers);
    const emptyReason: NoTargetReason | undefined =
      inGroup.length === 0
        ? 'no-worker-in-group'
        : candidates.length === 0
          ? 'no-worker-accepting'
          : undefined;

    if (req.strategy === 'sharding-broadcast') {
      const shards = candidates.map((worker, i) => ({
        worker,
        shardIndex: i,
        shardTotal: candidates.length,
      }));
      return emptyReason
        ? { mode: 'broadcast', strategy: req.strategy, shards, reason: emptyReason }
        : { mode: 'broadcast', strategy: req.strategy, shards };
    }
    if (emptyReason) return { mode: 'ordered', strategy: req.strategy, targets: [], reason: emptyReason };

    const ctx: RouteContext = {
      candidates,
      scope: req.scope,
      hashKey: req.hashKey ?? req.scope,
      random: this.random,
      recentlyFailed: (key) => this.recentlyFailed(key),
    };
    const targets = this.strategies[req.strategy].order(ctx);
    return targets.length === 0
      ? { mode: 'ordered', strategy: req.strategy, targets, reason: 'no-worker-with-free-capacity' }
      : { mode: 'ordered', strategy: req.strategy, targets };
  }

  /** A dispatch to this worker failed (unreachable, refused): `failover` puts it last for a while. */
  reportDispatchFailure(workerKey: string): void {
    this.failedAt.set(workerKey, this.clock.monotonic());
  }

  /** A dispatch to this worker succeeded: it is healthy again. */
  reportDispatchSuccess(workerKey: string): void {
    this.failedAt.delete(workerKey);
  }

  private recentlyFailed(key: string): boolean {
    const at = this.failedAt.get(key);
    if (at === undefined) return false;
    if (this.clock.monotonic() - at >= this.failureCooldownMs) {
      this.failedAt.delete(key);
      return false;
    }
    return true;
  }
}
