// Degraded operation when PostgreSQL is unreachable (docs/operations.md#degraded-operation), with
// real daemons and a fault proxy on each master's database link:
// - a master cut from PostgreSQL while the other master reaches it steps out (exit code 4, its
//   session ended) after `db.stepOutAfter`, and the other master fires every schedule from then
//   on — no schedule stays silent behind a master that cannot write;
// - when every master is cut (PostgreSQL itself is down), nobody steps out, and firing resumes
//   when the database answers again.
import { eventually } from '@sched/testkit';
import { afterEach, expect, test } from 'vitest';
import { type DaemonHandle, TestCluster } from './cluster.js';

let cluster: TestCluster | undefined;

afterEach(async () => {
  await cluster?.stop();
  cluster = undefined;
});

const schedules = ['every-a', 'every-b', 'every-c', 'every-d'];

async function applySchedules(c: TestCluster): Promise<void> {
  await c.apply(
    ...schedules.map((name) => ({
      name,
      schedule: { cron: '* * * * * ?' },
      tasks: [{ name: 't', type: 'noop' }],
    })),
  );
}

/** The newest fire time of each schedule, epoch ms (0 when none). */
async function latestFires(c: TestCluster): Promise<Map<string, number>> {
  const rows = await c.query<{ name: string; latest: Date | null }>(
    `SELECT w.name, max(r.fire_time) AS latest
       FROM workflows w LEFT JOIN runs r ON r.workflow_id = w.id
      GROUP BY w.name`,
  );
  return new Map(rows.map((r) => [r.name, r.latest ? r.latest.getTime() : 0]));
}

async function everyScheduleFiredAfter(c: TestCluster, sinceMs: number, timeoutMs: number): Promise<void> {
  await eventually(
    async () => {
      const latest = await latestFires(c);
      const silent = schedules.filter((s) => (latest.get(s) ?? 0) <= sinceMs);
      if (silent.length > 0)
        throw new Error(`no fire after ${new Date(sinceMs).toISOString()}: ${silent.join(', ')}`);
    },
    { timeoutMs, intervalMs: 250 },
  ).catch((err) => {
    throw new Error(`${(err as Error).message}\n${c.output()}`);
  });
}

const exitCode = async (d: DaemonHandle, withinMs: number) =>
  Promise.race([
    d.child.exited.then((e) => e.code),
    new Promise<'running'>((r) => setTimeout(() => r('running'), withinMs)),
  ]);

test('a master cut from PostgreSQL while another reaches it steps out (exit 4); the other fires every schedule', async () => {
  cluster = await TestCluster.create({ pgProxies: true, env: { SCHED_DB_STEP_OUT_AFTER: '3s' } });
  const m1 = await cluster.startMaster();
  const m2 = await cluster.startMaster();
  await cluster.startWorker();
  await applySchedules(cluster);
  await everyScheduleFiredAfter(cluster, Date.now() + 1000, 15_000);

  const cutAt = Date.now();
  m1.pgProxy?.setMode('blackhole');
  // Down for 3 s (probed each second, a probe times out after 2 s), then it steps out.
  const code = await exitCode(m1, 15_000);
  expect(code, cluster.output()).toBe(4);
  const exitedAfterMs = Date.now() - cutAt;
  expect(exitedAfterMs).toBeGreaterThanOrEqual(3_000);
  expect(m1.child.output()).toContain('stepping out so the other masters take over');
  // m2 takes every schedule over (the slots follow the live masters) and fires on time again.
  await everyScheduleFiredAfter(cluster, Date.now() + 1000, 15_000);
  process.stdout.write(
    `[db step-out] master stepped out ${exitedAfterMs} ms after its database link was cut (db.stepOutAfter 3 s); ` +
      `every schedule fired by the other master ${Date.now() - cutAt} ms after the cut\n`,
  );
  expect(m2.child.running).toBe(true);
  // Nothing fired twice meanwhile.
  const doubled = await cluster.query<{ n: number }>(
    `SELECT count(*)::int AS n FROM (SELECT schedule_id, fire_time FROM runs WHERE schedule_id IS NOT NULL
        GROUP BY 1, 2 HAVING count(*) > 1) d`,
  );
  expect(doubled[0]?.n).toBe(0);
  m1.pgProxy?.setMode('pass');
}, 90_000);

test('with every master cut from PostgreSQL nobody steps out, and firing resumes when it answers again', async () => {
  cluster = await TestCluster.create({ pgProxies: true, env: { SCHED_DB_STEP_OUT_AFTER: '2s' } });
  const m1 = await cluster.startMaster();
  const m2 = await cluster.startMaster();
  await cluster.startWorker();
  await applySchedules(cluster);
  await everyScheduleFiredAfter(cluster, Date.now() + 1000, 15_000);

  for (const m of [m1, m2]) m.pgProxy?.setMode('blackhole');
  // Three times the step-out delay: a master that stepped out now would have left no one.
  expect(await exitCode(m1, 6_000)).toBe('running');
  expect(m2.child.running).toBe(true);
  for (const m of [m1, m2]) {
    expect(m.child.output()).toContain('PostgreSQL does not answer');
    expect(m.child.output()).not.toContain('stepping out');
  }
  const healedAt = Date.now();
  for (const m of [m1, m2]) m.pgProxy?.setMode('pass');
  await everyScheduleFiredAfter(cluster, healedAt + 1000, 30_000);
  for (const m of [m1, m2]) expect(m.child.output()).toMatch(/PostgreSQL answers again after/);
}, 90_000);
