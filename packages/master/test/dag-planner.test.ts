import { describe, expect, test } from 'vitest';
import { type AttemptView, type PlannedTask, planRun, retryDelayMs } from '../src/runs/dag-planner.js';

const noRetry = { max: 0, backoff: 'fixed', delayMs: 0 } as const;
const task = (name: string, dependsOn: string[] = [], extra: Partial<PlannedTask> = {}): PlannedTask => ({
  name,
  dependsOn,
  retries: noRetry,
  failover: 'rerun',
  ...extra,
});
const att = (
  taskName: string,
  attempt: number,
  state: AttemptView['state'],
  endedAt: number | null = null,
) => ({
  taskName,
  attempt,
  state,
  endedAt,
});

// A fan-out / fan-in DAG: a → (b, c, d) → e → f
const dag = [
  task('a'),
  task('b', ['a']),
  task('c', ['a']),
  task('d', ['a']),
  task('e', ['b', 'c', 'd']),
  task('f', ['e']),
];

describe('planRun', () => {
  test('a fresh run dispatches only the roots', () => {
    const plan = planRun(dag, [], 0);
    expect(plan.dispatch).toEqual([{ taskName: 'a', attempt: 1 }]);
    expect(plan.tasks).toMatchObject({ a: 'ready', b: 'waiting', e: 'waiting', f: 'waiting' });
    expect(plan.outcome).toBeNull();
  });

  test('fan-out after the root succeeds, fan-in only when every upstream succeeded', () => {
    const afterA = planRun(dag, [att('a', 1, 'succeeded', 10)], 20);
    expect(afterA.dispatch.map((d) => d.taskName).sort()).toEqual(['b', 'c', 'd']);

    const partial = planRun(
      dag,
      [
        att('a', 1, 'succeeded', 10),
        att('b', 1, 'succeeded', 11),
        att('c', 1, 'succeeded', 12),
        att('d', 1, 'running'),
      ],
      20,
    );
    expect(partial.dispatch).toEqual([]);
    expect(partial.tasks.e).toBe('waiting');

    const all = planRun(
      dag,
      ['a', 'b', 'c', 'd', 'e', 'f'].map((n) => att(n, 1, 'succeeded', 10)),
      20,
    );
    expect(all.outcome).toBe('succeeded');
    expect(all.dispatch).toEqual([]);
  });

  test('a failure with retries left waits for the backoff, then dispatches the next attempt', () => {
    const tasks = [task('x', [], { retries: { max: 2, backoff: 'exponential', delayMs: 1000 } })];
    const first = planRun(tasks, [att('x', 1, 'failed', 5_000)], 5_500);
    expect(first.tasks.x).toBe('retry-wait');
    expect(first.wakeAt).toBe(6_000);
    expect(first.dispatch).toEqual([]);

    const due = planRun(tasks, [att('x', 1, 'failed', 5_000)], 6_000);
    expect(due.dispatch).toEqual([{ taskName: 'x', attempt: 2 }]);

    // second retry doubles the delay
    const second = planRun(tasks, [att('x', 1, 'failed', 5_000), att('x', 2, 'timed-out', 7_000)], 7_100);
    expect(second.wakeAt).toBe(9_000);

    // retries exhausted → failed, run failed
    const done = planRun(
      tasks,
      [att('x', 1, 'failed', 5_000), att('x', 2, 'failed', 7_000), att('x', 3, 'failed', 11_000)],
      20_000,
    );
    expect(done.tasks.x).toBe('failed');
    expect(done.outcome).toBe('failed');
  });

  test('downstream of a failed task never starts; independent branches finish; the run fails', () => {
    const tasks = [task('a'), task('b', ['a']), task('c'), task('d', ['c'])];
    const plan = planRun(tasks, [att('a', 1, 'failed', 1), att('c', 1, 'succeeded', 1)], 2);
    expect(plan.tasks).toEqual({ a: 'failed', b: 'upstream-failed', c: 'succeeded', d: 'ready' });
    expect(plan.dispatch).toEqual([{ taskName: 'd', attempt: 1 }]);
    expect(plan.outcome).toBeNull();

    const end = planRun(
      tasks,
      [att('a', 1, 'failed', 1), att('c', 1, 'succeeded', 1), att('d', 1, 'succeeded', 3)],
      4,
    );
    expect(end.outcome).toBe('failed');
    expect(end.tasks.b).toBe('upstream-failed');
  });

  test('a failed-over attempt is re-dispatched at once and does not use up a retry', () => {
    const tasks = [task('x', [], { retries: { max: 1, backoff: 'fixed', delayMs: 60_000 } })];
    const plan = planRun(tasks, [att('x', 1, 'failed-over', 100)], 101);
    expect(plan.dispatch).toEqual([{ taskName: 'x', attempt: 2 }]);

    // one real failure after a failover still has its retry left
    const after = planRun(tasks, [att('x', 1, 'failed-over', 100), att('x', 2, 'failed', 200)], 201);
    expect(after.tasks.x).toBe('retry-wait');

    const failPolicy = planRun([task('y', [], { failover: 'fail' })], [att('y', 1, 'failed-over', 1)], 2);
    expect(failPolicy.tasks.y).toBe('failed');
    expect(failPolicy.outcome).toBe('failed');
  });

  test('a killed attempt is not retried', () => {
    const tasks = [task('x', [], { retries: { max: 3, backoff: 'fixed', delayMs: 0 } })];
    expect(planRun(tasks, [att('x', 1, 'killed', 1)], 2).tasks.x).toBe('failed');
  });

  test('retryDelayMs: fixed, exponential, capped', () => {
    expect(retryDelayMs({ max: 5, backoff: 'fixed', delayMs: 500 }, 4)).toBe(500);
    expect(
      [1, 2, 3, 4].map((n) => retryDelayMs({ max: 5, backoff: 'exponential', delayMs: 100 }, n)),
    ).toEqual([100, 200, 400, 800]);
    expect(retryDelayMs({ max: 5, backoff: 'exponential', delayMs: 100, maxDelayMs: 300 }, 4)).toBe(300);
  });
});

describe('planRun with shards', () => {
  const sharded = [task('s', [], { retries: { max: 1, backoff: 'fixed', delayMs: 0 } }), task('t', ['s'])];
  const shard = (i: number, attempt: number, state: AttemptView['state'], endedAt: number | null = 1) => ({
    ...att('s', attempt, state, endedAt),
    shardIndex: i,
    shardTotal: 3,
  });

  test('each shard is retried on its own, with its shard index', () => {
    const plan = planRun(
      sharded,
      [shard(0, 1, 'succeeded'), shard(1, 1, 'failed'), shard(2, 1, 'running')],
      5,
    );
    expect(plan.dispatch).toEqual([{ taskName: 's', attempt: 2, shard: { index: 1, total: 3 } }]);
    expect(plan.tasks.s).toBe('ready');
    expect(plan.tasks.t).toBe('waiting');
  });

  test('the task succeeds only when every shard succeeded', () => {
    const done = planRun(
      sharded,
      [shard(0, 1, 'succeeded'), shard(1, 1, 'succeeded'), shard(2, 1, 'succeeded')],
      5,
    );
    expect(done.tasks.s).toBe('succeeded');
    expect(done.dispatch).toEqual([{ taskName: 't', attempt: 1 }]);

    const oneFailed = planRun(
      sharded,
      [shard(0, 1, 'succeeded'), shard(1, 1, 'failed'), shard(1, 2, 'failed'), shard(2, 1, 'succeeded')],
      5,
    );
    expect(oneFailed.tasks.s).toBe('failed');
    expect(oneFailed.tasks.t).toBe('upstream-failed');
    expect(oneFailed.outcome).toBe('failed');
  });

  test('a pending attempt (no worker yet) counts as active: no second attempt is planned', () => {
    const plan = planRun([task('x')], [att('x', 1, 'pending')], 1);
    expect(plan.tasks.x).toBe('active');
    expect(plan.dispatch).toEqual([]);
  });
});
