// Degraded operation when ZooKeeper is down for longer than the session timeout
// (docs/operations.md#degraded-operation), with real daemons and a private ZooKeeper server that
// is stopped and started again: every node fences itself (a worker kills its task at its lease
// deadline; masters stop firing), nothing fires while it is down, and when ZooKeeper is back the
// cluster recovers by itself: schedules fire again, the killed task runs again to success, no fire
// is doubled and no task runs twice at once. Prints the observed timings for the runbook.
import { eventually, startZooKeeper } from '@sched/testkit';
import { afterEach, expect, test } from 'vitest';
import { TestCluster } from './cluster.js';

let cluster: TestCluster | undefined;

afterEach(async () => {
  await cluster?.stop();
  cluster = undefined;
});

test('ZooKeeper down past the session timeout: every node fences, nothing fires, and the cluster recovers by itself', async () => {
  const zk = await startZooKeeper();
  cluster = await TestCluster.create({ zkConnect: zk.connectString });
  const master = await cluster.startMaster();
  await cluster.startMaster();
  const worker = await cluster.startWorker();
  await cluster.apply(
    {
      name: 'tick',
      schedule: { cron: '* * * * * ?', misfire: 'skip' },
      tasks: [{ name: 't', type: 'noop' }],
    },
    { name: 'long', tasks: [{ name: 'sleep', type: 'shell', command: 'sleep 12' }] },
  );
  await cluster.trigger('long');
  await eventually(
    async () => {
      const [a] = await cluster!.query<{ state: string }>(
        `SELECT a.state FROM task_attempts a JOIN runs r ON r.id = a.run_id JOIN workflows w ON w.id = r.workflow_id WHERE w.name = 'long'`,
      );
      expect(a?.state).toBe('running');
    },
    { timeoutMs: 20_000 },
  );

  const downAt = Date.now();
  await zk.stop();
  // Session timeout 4 s (test timings): the worker kills its task at its lease deadline.
  await eventually(() => expect(worker.child.output()).toContain('killing every running task'), {
    timeoutMs: 15_000,
    intervalMs: 100,
  });
  const fencedAfterMs = Date.now() - downAt;
  await eventually(() => expect(master.child.output()).toContain('self-fencing'), { timeoutMs: 10_000 });
  // Nothing fires while ZooKeeper is down: no node can prove it holds its schedules.
  await new Promise((r) => setTimeout(r, 10_000 - (Date.now() - downAt)));
  const quietFrom = downAt + 6_000;
  const firedWhileDown = await cluster.query<{ n: number }>(
    `SELECT count(*)::int AS n FROM runs WHERE fire_time >= $1 AND created_at <= now()`,
    [new Date(quietFrom)],
  );
  expect(firedWhileDown[0]?.n).toBe(0);

  const upAt = Date.now();
  await zk.restart();
  // Schedules fire on time again (fires missed while down are skipped by this schedule's policy).
  await eventually(
    async () => {
      const [r] = await cluster!.query<{ n: number }>(
        `SELECT count(*)::int AS n FROM runs r JOIN workflows w ON w.id = r.workflow_id
          WHERE w.name = 'tick' AND r.fire_time > $1 AND r.state = 'succeeded'`,
        [new Date(upAt + 1000)],
      );
      expect(r?.n).toBeGreaterThanOrEqual(2);
    },
    { timeoutMs: 60_000, intervalMs: 250 },
  ).catch((err) => {
    throw new Error(`${(err as Error).message}\n${cluster?.output()}`);
  });
  const firingAgainAfterMs = Date.now() - upAt;
  // The killed task runs again and the run succeeds (one more attempt, not a retry of the task's own).
  await eventually(
    async () => {
      const [r] = await cluster!.query<{ state: string }>(
        `SELECT r.state FROM runs r JOIN workflows w ON w.id = r.workflow_id WHERE w.name = 'long'`,
      );
      expect(r?.state).toBe('succeeded');
    },
    { timeoutMs: 90_000, intervalMs: 500 },
  ).catch((err) => {
    throw new Error(`${(err as Error).message}\n${cluster?.output()}`);
  });
  const doubled = await cluster.query<{ n: number }>(
    `SELECT count(*)::int AS n FROM (SELECT schedule_id, fire_time FROM runs WHERE schedule_id IS NOT NULL
        GROUP BY 1, 2 HAVING count(*) > 1) d`,
  );
  expect(doubled[0]?.n).toBe(0);
  // No two attempts of the long task overlapped: each began after the previous one ended.
  const attempts = await cluster.query<{ started_at: Date | null; ended_at: Date | null }>(
    `SELECT a.started_at, a.ended_at FROM task_attempts a JOIN runs r ON r.id = a.run_id
       JOIN workflows w ON w.id = r.workflow_id WHERE w.name = 'long' ORDER BY a.attempt`,
  );
  expect(attempts.length).toBeGreaterThanOrEqual(2);
  for (let i = 1; i < attempts.length; i++) {
    const prevEnd = attempts[i - 1]?.ended_at?.getTime() ?? Number.POSITIVE_INFINITY;
    const start = attempts[i]?.started_at?.getTime() ?? 0;
    expect(start).toBeGreaterThanOrEqual(prevEnd - 1000);
  }
  process.stdout.write(
    `[zookeeper outage] task killed ${fencedAfterMs} ms after ZooKeeper stopped (session timeout 4 s); ` +
      `schedules succeeding again ${firingAgainAfterMs} ms after it restarted; attempts of the long task: ${attempts.length}\n`,
  );
}, 180_000);
