import { SchedError } from '@sched/core';
import { ROUTING_STRATEGIES } from '@sched/store';
import type { WorkerView } from './worker-view.js';

/**
 * Every routing strategy a task may name in its definition (`routing: round-robin`): the list
 * the definition validator accepts (store), so the two can never disagree.
 */
export { ROUTING_STRATEGIES };

export type RoutingStrategyName = (typeof ROUTING_STRATEGIES)[number];

/** The strategy used when a task names none. */
export const DEFAULT_ROUTING_STRATEGY: RoutingStrategyName = 'round-robin';

/** What one routing decision sees. */
export interface RouteContext {
  /** Workers of the group that accept work (NORMAL), in `compareWorkers` order. Never empty. */
  readonly candidates: readonly WorkerView[];
  /**
   * Whose memory a stateful strategy uses (round-robin counter, WRR current weights, LFU counts,
   * LRU order): usually `workflow/task`, so each task is spread on its own, as in xxl-job.
   */
  readonly scope: string;
  /** Key for consistent-hash: the task, or a task parameter when the definition says so. */
  readonly hashKey: string;
  /** Uniform in [0, 1); injected so tests are deterministic. */
  random(): number;
  /** Whether a dispatch to this worker failed recently (transport error or refusal). */
  recentlyFailed(key: string): boolean;
}

/**
 * A strategy orders the candidates: the first is its choice, the rest are who to try next if
 * that worker refuses (at capacity, draining) or cannot be reached. A strategy may leave
 * candidates out (busyover leaves out full workers); an empty order means "nobody now, retry later".
 * Calling `order` counts as a decision: stateful strategies advance their memory.
 */
export interface RoutingStrategy {
  readonly name: RoutingStrategyName;
  order(ctx: RouteContext): WorkerView[];
}

/** Parses a strategy name from a definition or config. @throws SchedError `ROUTING_STRATEGY_INVALID` naming `path`. */
export function parseRoutingStrategy(input: unknown, path = 'routing'): RoutingStrategyName {
  if (typeof input === 'string' && (ROUTING_STRATEGIES as readonly string[]).includes(input)) {
    return input as RoutingStrategyName;
  }
  throw new SchedError(
    'ROUTING_STRATEGY_INVALID',
    `${path}: unknown routing strategy ${JSON.stringify(input)}; accepted: ${ROUTING_STRATEGIES.join(', ')}`,
  );
}

/** `list` rotated so that index `start` comes first. */
export function rotate<T>(list: readonly T[], start: number): T[] {
  if (list.length === 0) return [];
  const s = ((start % list.length) + list.length) % list.length;
  return [...list.slice(s), ...list.slice(0, s)];
}
