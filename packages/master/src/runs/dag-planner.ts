// The DAG planner: given a run's task definitions and every attempt recorded so far, decide
// what each task's state is and what the owner master should do next. Pure: the run driver
// loads the state from PostgreSQL, calls `planRun`, and applies the actions with fenced writes,
// so a master that takes over a run (failover) continues from the database alone.
//
// Task states (derived, never stored):
//
// | state            | when                                                                 |
// |------------------|----------------------------------------------------------------------|
// | waiting          | no attempt yet; some upstream task is not terminal                   |
// | ready            | no attempt yet (or retry due); every upstream task succeeded         |
// | retry-wait       | last attempt failed/timed-out, retries left, backoff not yet elapsed  |
// | active           | last attempt pending (intent, no worker yet), dispatched or running  |
// | succeeded        | last attempt succeeded                                               |
// | failed           | last attempt failed/timed-out/killed with no retries left, or failed |
// |                  | over with failover policy `fail`                                     |
// | upstream-failed  | no attempt, and an upstream task is failed or upstream-failed         |
//
// Transitions the planner asks for: ready → dispatch attempt n+1; retry-wait → dispatch when
// `notBefore` passes (the driver arms a timer for `wakeAt`); failed-over with policy `rerun` →
// dispatch at once (a failover is not the task's fault, so it does not use up a retry).
// The run is terminal when every task is terminal: succeeded if all succeeded, else failed.
//
// Sharded tasks (sharding-broadcast) have one attempt lineage per shard: each shard is retried
// on its own, and the task is terminal when every shard is (succeeded only if all succeeded).
// The first dispatch of a task carries no shard: the router decides how many shards there are.

/** Attempt states as stored (store's task_attempts.state). */
export type { AttemptState } from '@sched/store';

import type { AttemptState } from '@sched/store';

export type TaskState =
  | 'waiting'
  | 'ready'
  | 'retry-wait'
  | 'active'
  | 'succeeded'
  | 'failed'
  | 'upstream-failed';

export interface PlannedTask {
  name: string;
  dependsOn: readonly string[];
  retries: { max: number; backoff: 'fixed' | 'exponential'; delayMs: number; maxDelayMs?: number };
  /** What to do when the worker running it is failed over. */
  failover: 'rerun' | 'fail';
}

export interface AttemptView {
  taskName: string;
  attempt: number;
  /** @defaultValue 0 */
  shardIndex?: number;
  /** @defaultValue 1 */
  shardTotal?: number;
  state: AttemptState;
  /** Wall-clock epoch ms when the attempt ended; required for terminal states to compute backoff. */
  endedAt: number | null;
}

export interface DispatchAction {
  taskName: string;
  attempt: number;
  /** Set when re-dispatching one shard of a sharded task; absent on a task's first dispatch. */
  shard?: { index: number; total: number };
}

export interface RunPlan {
  tasks: Record<string, TaskState>;
  /** Attempts to create and dispatch now. */
  dispatch: DispatchAction[];
  /** Earliest wall time at which a retry becomes due (the driver re-plans then); null if none. */
  wakeAt: number | null;
  /** Terminal run state, or null while the run goes on. */
  outcome: 'succeeded' | 'failed' | null;
}

const ACTIVE: ReadonlySet<AttemptState> = new Set(['pending', 'dispatched', 'running']);
const FAILED: ReadonlySet<AttemptState> = new Set(['failed', 'timed-out', 'killed']);

/** Delay before retry number `retry` (1 = the first retry), per the task's backoff. */
export function retryDelayMs(retries: PlannedTask['retries'], retry: number): number {
  const raw = retries.backoff === 'fixed' ? retries.delayMs : retries.delayMs * 2 ** (retry - 1);
  return retries.maxDelayMs === undefined ? raw : Math.min(raw, retries.maxDelayMs);
}

export function planRun(
  tasks: readonly PlannedTask[],
  attempts: readonly AttemptView[],
  now: number,
): RunPlan {
  const byTask = new Map<string, AttemptView[]>();
  for (const a of attempts) {
    const list = byTask.get(a.taskName) ?? [];
    list.push(a);
    byTask.set(a.taskName, list);
  }
  for (const list of byTask.values()) list.sort((x, y) => x.attempt - y.attempt);

  const defs = new Map(tasks.map((t) => [t.name, t]));
  const states: Record<string, TaskState> = {};
  const dispatch: DispatchAction[] = [];
  let wakeAt: number | null = null;

  // Memoised recursion over the DAG (definitions are validated acyclic before they are stored).
  const stateOf = (name: string, path: ReadonlySet<string> = new Set()): TaskState => {
    const known = states[name];
    if (known !== undefined) return known;
    const def = defs.get(name);
    if (!def) throw new Error(`planRun: unknown task "${name}"`);
    if (path.has(name)) throw new Error(`planRun: dependency cycle through "${name}"`);
    const inner = new Set(path).add(name);
    const s = computeState(def, byTask.get(name) ?? [], (dep) => stateOf(dep, inner));
    states[name] = s;
    return s;
  };

  const computeState = (
    def: PlannedTask,
    history: AttemptView[],
    upstream: (dep: string) => TaskState,
  ): TaskState => {
    if (history.length === 0) {
      const ups = def.dependsOn.map(upstream);
      if (ups.some((u) => u === 'failed' || u === 'upstream-failed')) return 'upstream-failed';
      if (ups.every((u) => u === 'succeeded')) {
        dispatch.push({ taskName: def.name, attempt: 1 });
        return 'ready';
      }
      return 'waiting';
    }
    const lineages = new Map<number, AttemptView[]>();
    for (const a of history) {
      const i = a.shardIndex ?? 0;
      const list = lineages.get(i) ?? [];
      list.push(a);
      lineages.set(i, list);
    }
    const states = [...lineages.values()].map((l) => lineageState(def, l));
    if (states.every((s) => s === 'succeeded')) return 'succeeded';
    for (const s of ['ready', 'retry-wait', 'active'] as const) if (states.includes(s)) return s;
    return 'failed';
  };

  /** The state of one shard's attempts (all attempts when the task is not sharded). */
  const lineageState = (def: PlannedTask, history: AttemptView[]): TaskState => {
    const last = history.at(-1) as AttemptView;
    const shard =
      (last.shardTotal ?? 1) > 1
        ? { shard: { index: last.shardIndex ?? 0, total: last.shardTotal ?? 1 } }
        : {};
    if (ACTIVE.has(last.state)) return 'active';
    if (last.state === 'succeeded') return 'succeeded';
    if (last.state === 'failed-over') {
      if (def.failover === 'fail') return 'failed';
      dispatch.push({ taskName: def.name, attempt: last.attempt + 1, ...shard });
      return 'ready';
    }
    if (FAILED.has(last.state)) {
      // Only the task's own failures use up retries; failed-over attempts do not.
      const failures = history.filter((a) => FAILED.has(a.state)).length;
      if (last.state === 'killed' || failures > def.retries.max) return 'failed';
      const due = (last.endedAt ?? now) + retryDelayMs(def.retries, failures);
      if (due <= now) {
        dispatch.push({ taskName: def.name, attempt: last.attempt + 1, ...shard });
        return 'ready';
      }
      wakeAt = wakeAt === null ? due : Math.min(wakeAt, due);
      return 'retry-wait';
    }
    throw new Error(`planRun: unexpected attempt state "${last.state}"`);
  };

  for (const t of tasks) stateOf(t.name);

  const all = Object.values(states);
  const terminal = all.every((s) => s === 'succeeded' || s === 'failed' || s === 'upstream-failed');
  const outcome = terminal ? (all.every((s) => s === 'succeeded') ? 'succeeded' : 'failed') : null;
  return { tasks: states, dispatch, wakeAt, outcome };
}
