// Exactly-once firing under master churn. Three masters (real processes) and 500
// schedules firing every second for 30 s while one master is stopped (SIGTERM), one is killed -9
// and one is started: for every schedule, every second of the window has exactly one run —
// none missing, none doubled — checked from the database.
//
// Seconds owned by the killed master are fired late, by whichever master takes its slot once
// ZooKeeper has expired its session; `misfire: fire-all` makes those late fires count (with the
// default `fire-once-now`, several missed seconds would collapse into one run, by design).
import { sleep } from '@sched/testkit';
import { afterAll, expect, test } from 'vitest';
import { TestCluster } from './cluster.js';

const SCHEDULES = 500;
const WINDOW_S = 30;

let cluster: TestCluster | undefined;
afterAll(async () => {
  await cluster?.stop();
});

test(`${SCHEDULES} every-second schedules, 3 masters churned for ${WINDOW_S} s: exactly one run per schedule per second`, {
  timeout: 300_000,
}, async () => {
  cluster = await TestCluster.create({ env: { SCHED_LOG_LEVEL: 'warn', SCHED_WORKER_CAPACITY: '1000' } });
  const c = cluster;
  const [stopped, killed] = [await c.startMaster(), await c.startMaster()];
  await c.startMaster();
  await c.startWorker();
  const defs = Array.from({ length: SCHEDULES }, (_, i) => ({
    name: `every-second-${i}`,
    schedule: { cron: '* * * * * ?', misfire: 'fire-all', concurrency: 'allow' },
    tasks: [{ name: 'noop', type: 'noop' }],
  }));
  await c.apply(...defs);

  // The window starts on a whole second, a little after the definitions are in.
  const windowStart = Math.ceil((Date.now() + 3_000) / 1000) * 1000;
  const windowEnd = windowStart + WINDOW_S * 1000;
  const at = (offsetS: number) => sleep(Math.max(0, windowStart + offsetS * 1000 - Date.now()));

  await at(5);
  await stopped.child.stop(15_000); // graceful: it hands back its runs and deregisters
  await at(12);
  await killed.child.kill9(); // its slot's seconds are fired late, after its session expires
  await at(18);
  await c.startMaster();
  await at(WINDOW_S);
  // Session timeout (4 s) + re-slot + catch-up.
  await sleep(10_000);

  const rows = await c.query<{ name: string; fire_s: number; n: number }>(
    `SELECT w.name, (extract(epoch FROM r.fire_time))::bigint AS fire_s, count(*)::int AS n
       FROM runs r JOIN workflows w ON w.id = r.workflow_id
      WHERE r.fire_time >= to_timestamp($1 / 1000.0) AND r.fire_time < to_timestamp($2 / 1000.0)
      GROUP BY 1, 2`,
    [windowStart, windowEnd],
  );
  const doubled = rows.filter((r) => r.n !== 1);
  const seen = new Set(rows.map((r) => `${r.name}@${r.fire_s}`));
  const missing: string[] = [];
  for (let i = 0; i < SCHEDULES; i++) {
    for (let t = windowStart / 1000; t < windowEnd / 1000; t++) {
      if (!seen.has(`every-second-${i}@${t}`))
        missing.push(`every-second-${i}@${new Date(t * 1000).toISOString()}`);
    }
  }
  const [kinds] = await c.query<{ late: number; total: number }>(
    `SELECT count(*) FILTER (WHERE created_at - fire_time > interval '1 second')::int AS late, count(*)::int AS total FROM runs
      WHERE fire_time >= to_timestamp($1 / 1000.0) AND fire_time < to_timestamp($2 / 1000.0)`,
    [windowStart, windowEnd],
  );
  console.log(
    `exactly-once churn: ${kinds?.total} runs in the window (${kinds?.late} created more than 1 s late, after the kill), ${missing.length} missing, ${doubled.length} doubled`,
  );
  expect(missing.slice(0, 10)).toEqual([]);
  expect(doubled).toEqual([]);
  expect(kinds?.total).toBe(SCHEDULES * WINDOW_S);
  // The kill really cost the killed master's slot its timely fires: they came late, and came.
  expect(kinds?.late).toBeGreaterThan(0);
});
