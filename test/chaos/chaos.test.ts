// The failover guarantees hold under seeded faults (short variant inside `npm test`): the chaos
// suite of `npm run chaos` (packages/chaos/src/chaos-run.ts), run in-process for 75 s of
// nemesis against the run's shared ZooKeeper (own chroot, each daemon behind its own fault
// proxies) and PostgreSQL (a fresh database). Prints the summary and asserts that every check
// passed. The seed is printed; SCHED_CHAOS_SEED repeats one.
import { formatSummary, runChaos } from '@sched/chaos';
import { expect, test } from 'vitest';

const seed = Number(process.env.SCHED_CHAOS_SEED ?? Math.floor(Math.random() * 2 ** 31));

test('chaos: kill -9, black-holes, cuts and pauses of masters and workers lose, duplicate and overlap nothing', {
  timeout: 240_000,
}, async () => {
  const report = await runChaos({
    durationMs: 75_000,
    seed,
    quiesceTimeoutMs: 60_000,
    log: (line) => process.stderr.write(`[chaos] ${line}\n`),
  });
  const summary = formatSummary(report);
  process.stdout.write(`${summary}\n`);
  // The nemesis did its job: faults of several kinds, some longer than the session timeout.
  expect(report.faults.length).toBeGreaterThanOrEqual(8);
  expect(report.longFaults).toBeGreaterThan(0);
  expect(report.facts.runs.length).toBeGreaterThan(100);
  const failed = report.checks.filter((c) => !c.passed);
  expect(
    failed.map((c) => `${c.name}: ${c.violations.slice(0, 5).join(' | ')}`),
    summary,
  ).toEqual([]);
});
