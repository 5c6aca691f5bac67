import type { AttemptRow, AttemptState, RunRow } from '@sched/store';

/**
 * The JSON shapes of runs (docs/design.md#contract, docs/cli.md). Fields may be added, never
 * renamed: `address` is `host:port`, `workerStartTime` epoch ms, every other time ISO 8601 with
 * milliseconds.
 */

export interface RunSummaryJson {
  id: number;
  workflow: string;
  state: RunRow['state'];
  /** The scheduled fire time; null for manual runs. */
  fireTime: string | null;
  /**
   * When the run row was inserted; for a pre-staged scheduled run, its fire time (it is inserted
   * before and committed at it). No reader sees the run before this instant.
   */
  createdAt: string;
  endedAt: string | null;
  trigger: RunRow['trigger'];
  startedAt: string | null;
}

export interface AttemptJson {
  /** Attempt row id: what `sched-ctl task logs ID` takes. */
  id: number;
  attempt: number;
  /** Worker `host:port`, null before dispatch. */
  worker: string | null;
  workerStartTime: number | null;
  state: AttemptState;
  startedAt: string | null;
  endedAt: string | null;
  exitCode: number | null;
  shardIndex: number;
  shardTotal: number;
  error: string | null;
}

export type RunTaskState = 'waiting' | AttemptState;

export interface TaskJson {
  name: string;
  state: RunTaskState;
  attempts: AttemptJson[];
}

export interface RunDetailJson {
  id: number;
  workflow: string;
  workflowVersion: number;
  state: RunRow['state'];
  owner: string | null;
  trigger: RunRow['trigger'];
  fireTime: string | null;
  createdAt: string;
  startedAt: string | null;
  endedAt: string | null;
  cancelRequestedAt: string | null;
  rerunOf: number | null;
  params: Record<string, string>;
  /**
   * Scheduled runs: from the fire time to the start of the first task on its worker, in ms —
   * what a user waits for (the `sched_fire_to_start_seconds` histogram); null for runs without a
   * schedule and before any task started.
   */
  fireToStartMs: number | null;
  tasks: TaskJson[];
}

export function iso(d: Date | null): string | null {
  return d === null ? null : d.toISOString();
}

export function runSummaryJson(r: RunRow): RunSummaryJson {
  return {
    id: r.id,
    workflow: r.workflow,
    state: r.state,
    fireTime: iso(r.fireTime),
    createdAt: r.createdAt.toISOString(),
    endedAt: iso(r.endedAt),
    trigger: r.trigger,
    startedAt: iso(r.startedAt),
  };
}

export function attemptJson(a: AttemptRow): AttemptJson {
  return {
    id: a.id,
    attempt: a.attempt,
    worker: a.workerAddress,
    workerStartTime: a.workerStartTime,
    state: a.state,
    startedAt: iso(a.startedAt),
    endedAt: iso(a.endedAt),
    exitCode: a.exitCode,
    shardIndex: a.shardIndex,
    shardTotal: a.shardTotal,
    error: a.error,
  };
}

/**
 * A task's state from its attempts: `waiting` before any attempt exists (upstream tasks not done);
 * otherwise the state of the latest attempt of each shard, combined — every shard succeeded →
 * succeeded, any shard still in flight → that in-flight state, else the latest attempt's state.
 */
export function taskState(attempts: readonly AttemptRow[]): RunTaskState {
  if (attempts.length === 0) return 'waiting';
  const latestByShard = new Map<number, AttemptRow>();
  for (const a of attempts) {
    const seen = latestByShard.get(a.shardIndex);
    if (!seen || a.attempt > seen.attempt) latestByShard.set(a.shardIndex, a);
  }
  const latest = [...latestByShard.values()];
  if (latest.every((a) => a.state === 'succeeded')) return 'succeeded';
  for (const s of ['running', 'dispatched', 'pending'] as const) {
    if (latest.some((a) => a.state === s)) return s;
  }
  const failing = latest.find((a) => a.state !== 'succeeded');
  return (failing ?? (latest[0] as AttemptRow)).state;
}

/** The full run: every task of its definition version in definition order, with its attempts. */
export function runDetailJson(
  r: RunRow,
  taskNames: readonly string[],
  attempts: AttemptRow[],
): RunDetailJson {
  const byTask = new Map<string, AttemptRow[]>();
  for (const a of attempts) byTask.set(a.taskName, [...(byTask.get(a.taskName) ?? []), a]);
  // Tasks seen in attempts but not in the definition (should not happen) are still shown.
  const names = [...taskNames, ...[...byTask.keys()].filter((n) => !taskNames.includes(n))];
  return {
    id: r.id,
    workflow: r.workflow,
    workflowVersion: r.workflowVersion,
    state: r.state,
    owner: r.owner,
    trigger: r.trigger,
    fireTime: iso(r.fireTime),
    createdAt: r.createdAt.toISOString(),
    startedAt: iso(r.startedAt),
    endedAt: iso(r.endedAt),
    cancelRequestedAt: iso(r.cancelRequestedAt),
    rerunOf: r.rerunOf,
    params: r.params,
    fireToStartMs: fireToStartMs(r, attempts),
    tasks: names.map((name) => {
      const list = (byTask.get(name) ?? []).sort(
        (a, b) => a.shardIndex - b.shardIndex || a.attempt - b.attempt,
      );
      return { name, state: taskState(list), attempts: list.map(attemptJson) };
    }),
  };
}

/** Fire time → first attempt started, for scheduled runs (see `RunDetailJson.fireToStartMs`). */
export function fireToStartMs(r: RunRow, attempts: readonly AttemptRow[]): number | null {
  if (r.scheduleId === null || r.fireTime === null) return null;
  let first: number | null = null;
  for (const a of attempts) {
    if (a.startedAt !== null && (first === null || a.startedAt.getTime() < first))
      first = a.startedAt.getTime();
  }
  return first === null ? null : first - r.fireTime.getTime();
}
