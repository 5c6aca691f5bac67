// The run JSON shapes (docs/cli.md) and how a task's state is derived from its attempts.
import { runDetailJson, runSummaryJson, taskState } from '@sched/master';
import type { AttemptRow, RunRow } from '@sched/store';
import { describe, expect, test } from 'vitest';

const t0 = new Date('2026-01-01T00:00:00.000Z');

function run(over: Partial<RunRow> = {}): RunRow {
  return {
    id: 7,
    workflowId: 1,
    workflow: 'wf',
    workflowVersion: 2,
    scheduleId: null,
    fireTime: null,
    trigger: 'manual',
    state: 'running',
    queued: false,
    owner: '127.0.0.1:5000_1',
    params: {},
    commandId: 3,
    rerunOf: null,
    cancelRequestedAt: null,
    createdAt: t0,
    startedAt: t0,
    endedAt: null,
    ...over,
  };
}

let nextId = 1;
function attempt(
  taskName: string,
  n: number,
  state: AttemptRow['state'],
  shardIndex = 0,
  shardTotal = 1,
): AttemptRow {
  return {
    id: nextId++,
    runId: 7,
    taskName,
    attempt: n,
    shardIndex,
    shardTotal,
    state,
    workerAddress: '127.0.0.1:6000',
    workerStartTime: 1_700_000_000_000,
    workerKey: '127.0.0.1:6000_1700000000000',
    notBefore: null,
    createdAt: t0,
    dispatchedAt: t0,
    startedAt: t0,
    endedAt: state === 'running' ? null : t0,
    exitCode: state === 'succeeded' ? 0 : null,
    logTail: null,
    error: null,
  };
}

describe('run JSON', () => {
  test('summary: fireTime null for manual runs, ISO times with milliseconds', () => {
    expect(runSummaryJson(run())).toMatchObject({
      id: 7,
      workflow: 'wf',
      state: 'running',
      fireTime: null,
      createdAt: '2026-01-01T00:00:00.000Z',
      endedAt: null,
    });
  });

  test('task state from attempts', () => {
    expect(taskState([])).toBe('waiting');
    expect(taskState([attempt('a', 1, 'failed'), attempt('a', 2, 'running')])).toBe('running');
    expect(taskState([attempt('a', 1, 'failed'), attempt('a', 2, 'succeeded')])).toBe('succeeded');
    expect(taskState([attempt('a', 1, 'failed')])).toBe('failed');
    // Sharded: every shard must succeed; one in flight makes the task in flight.
    expect(taskState([attempt('s', 1, 'succeeded', 0, 2), attempt('s', 1, 'running', 1, 2)])).toBe('running');
    expect(taskState([attempt('s', 1, 'succeeded', 0, 2), attempt('s', 1, 'killed', 1, 2)])).toBe('killed');
  });

  test('detail lists every task of the definition in order, with its attempts', () => {
    const d = runDetailJson(run(), ['extract', 'load'], [attempt('extract', 1, 'succeeded')]);
    expect(d.tasks.map((t) => [t.name, t.state, t.attempts.length])).toEqual([
      ['extract', 'succeeded', 1],
      ['load', 'waiting', 0],
    ]);
    expect(d.tasks[0]?.attempts[0]).toMatchObject({
      attempt: 1,
      worker: '127.0.0.1:6000',
      workerStartTime: 1_700_000_000_000,
      state: 'succeeded',
      exitCode: 0,
      startedAt: '2026-01-01T00:00:00.000Z',
    });
    expect(d).toMatchObject({ id: 7, workflow: 'wf', state: 'running', owner: '127.0.0.1:5000_1' });
  });
});
