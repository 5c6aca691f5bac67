// The failover guarantees hold under seeded faults (short variant inside `npm test`): the chaos
// suite of `npm run chaos` (packages/chaos/src/chaos-run.ts), run in-process for 75 s of
// nemesis against the run's shared ZooKeeper (own chroot, each daemon behind its own fault
// proxies) and a private PostgreSQL, with PostgreSQL faults: restarts of that server and black
// holes and cuts of one master's database link (at least one of them in every run). Prints the
// summary and asserts that every check passed. The seed is printed; SCHED_CHAOS_SEED repeats one.
import { formatSummary, runChaos } from '@sched/chaos';
import { startPostgres } from '@sched/testkit';
import { expect, test } from 'vitest';

const seed = Number(process.env.SCHED_CHAOS_SEED ?? Math.floor(Math.random() * 2 ** 31));

test('chaos: kill -9, black-holes, cuts and pauses of masters and workers, and PostgreSQL faults, lose, duplicate and overlap nothing', {
  timeout: 240_000,
}, async () => {
  const pgServer = await startPostgres({ durableCommits: true });
  const report = await runChaos({
    durationMs: 75_000,
    seed,
    pgServer,
    pgFaults: true,
    quiesceTimeoutMs: 60_000,
    log: (line) => process.stderr.write(`[chaos] ${line}\n`),
  });
  const summary = formatSummary(report);
  process.stdout.write(`${summary}\n`);
  // The nemesis did its job: faults of several kinds, some longer than the session timeout.
  expect(report.faults.length).toBeGreaterThanOrEqual(8);
  expect(report.longFaults).toBeGreaterThan(0);
  const pgFaults =
    report.faultCounts['pg-blackhole'] + report.faultCounts['pg-cut'] + report.faultCounts['pg-restart'];
  expect(pgFaults, summary).toBeGreaterThanOrEqual(1);
  expect(report.facts.runs.length).toBeGreaterThan(100);
  const failed = report.checks.filter((c) => !c.passed);
  expect(
    failed.map((c) => `${c.name}: ${c.violations.slice(0, 5).join(' | ')}`),
    summary,
  ).toEqual([]);
});
