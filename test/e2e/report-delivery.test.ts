// Reports survive a master crash: with 2 masters and 50 runs in flight, stop the master the workers
// report to (kill -9; and separately a restart) while reports are pending: every report reaches
// a live master and is applied exactly once; no result is lost or applied twice.
import { eventually, sleep } from '@sched/testkit';
import { afterEach, describe, expect, test } from 'vitest';
import { type DaemonHandle, TestCluster } from './cluster.js';

let cluster: TestCluster | undefined;

afterEach(async () => {
  await cluster?.stop();
  cluster = undefined;
});

const RUNS = 50;

/** Two masters, the first one started before the workers (so it is the one they report to first). */
async function setUp(): Promise<{ first: DaemonHandle; second: DaemonHandle }> {
  cluster = await TestCluster.create();
  const first = await cluster.startMaster();
  await cluster.startWorker({ SCHED_WORKER_CAPACITY: '40' });
  await cluster.startWorker({ SCHED_WORKER_CAPACITY: '40' });
  const second = await cluster.startMaster();
  await cluster.apply({
    name: 'in-flight',
    tasks: [
      // Ends between 1 and 3 s after it starts, so reports keep arriving around the stop.
      {
        name: 'work',
        type: 'shell',
        command: 'sleep "1.$(( $SCHED_RUN_ID % 10 ))"; echo "run $SCHED_RUN_ID"',
      },
      { name: 'then', type: 'shell', command: 'echo "after $SCHED_RUN_ID"', dependsOn: ['work'] },
    ],
  });
  for (let i = 0; i < RUNS; i++) await cluster.trigger('in-flight');
  await eventually(
    async () => {
      const [row] = await (cluster as TestCluster).query<{ n: number }>(
        `SELECT count(*)::int AS n FROM task_attempts WHERE task_name = 'work' AND state IN ('running', 'succeeded')`,
      );
      if ((row?.n ?? 0) < RUNS) throw new Error(`only ${row?.n} started`);
    },
    { timeoutMs: 30_000 },
  );
  return { first, second };
}

async function expectEveryResultAppliedOnce(c: TestCluster): Promise<void> {
  const runs = await eventually(
    async () => {
      const rows = await c.query<{ id: number; state: string }>(`SELECT id, state FROM runs ORDER BY id`);
      if (rows.length !== RUNS || rows.some((r) => r.state !== 'succeeded')) {
        throw new Error(`not all succeeded: ${rows.filter((r) => r.state !== 'succeeded').length} left`);
      }
      return rows;
    },
    { timeoutMs: 60_000, intervalMs: 250 },
  ).catch((err) => {
    throw new Error(`${(err as Error).message}\n${c.output()}`);
  });
  expect(runs).toHaveLength(RUNS);
  const attempts = await c.query<{
    run_id: number;
    task_name: string;
    attempt: number;
    state: string;
    exit_code: number;
  }>(
    `SELECT run_id, task_name, attempt, state, exit_code FROM task_attempts ORDER BY run_id, task_name, attempt`,
  );
  // Exactly one attempt per task per run, each succeeded with exit code 0: every result arrived,
  // none was lost (the run would hang) and none was applied to a second attempt.
  expect(attempts).toHaveLength(RUNS * 2);
  for (const a of attempts) expect([a.attempt, a.state, a.exit_code]).toEqual([1, 'succeeded', 0]);
  // The log tail arrived with each result, holding that run's own output.
  const [tails] = await c.query<{ n: number }>(
    `SELECT count(*)::int AS n FROM task_attempts
      WHERE task_name = 'work' AND position(E'\\nrun ' || run_id || E'\\n' IN log_tail) > 0`,
  );
  expect(tails?.n).toBe(RUNS);
}

describe('reports survive the master they were sent to', { timeout: 150_000 }, () => {
  test('kill -9 of the reported-to master while reports are pending', async () => {
    const { first } = await setUp();
    await sleep(800);
    await first.child.kill9();
    await expectEveryResultAppliedOnce(cluster as TestCluster);
  });

  test('restart of the reported-to master while reports are pending', async () => {
    const { first } = await setUp();
    await sleep(800);
    await first.child.stop(10_000);
    await (cluster as TestCluster).startMaster();
    await expectEveryResultAppliedOnce(cluster as TestCluster);
  });
});
