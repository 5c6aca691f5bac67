import type { AttemptRow, RunRow } from '@sched/store';
import type { AttemptJson, RunDetailJson, RunSummaryJson, RunTaskState } from './api-schemas.js';

export type { AttemptJson, RunDetailJson, RunSummaryJson, RunTaskState, TaskJson } from './api-schemas.js';

/**
 * Runs as JSON (shapes: `api-schemas.ts`, docs/design.md#contract, docs/cli.md) from their rows.
 */

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
