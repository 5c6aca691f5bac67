// One chaos run (the failover guarantees under seeded faults), shared by `npm run chaos`
// (main.ts) and the short variant inside `npm test` (test/chaos/chaos.test.ts):
//
//   1. start 3 masters and 3 workers as child processes, each behind its own fault proxies to
//      ZooKeeper, on a fresh database; apply the workload; start the manual triggers;
//   2. warm up, then let the nemesis loose for `durationMs` (checked window starts here);
//   3. heal: every fault undone, every dead daemon restarted; wait 2 × session timeout +
//      failover delay + margin, so every failover that is due has happened;
//   4. quiesce: stop triggering, pause the schedules (checked window ends 3 s before), wait
//      until every run and attempt is terminal (bounded);
//   5. read the database and the task log and run the checks (checker.ts).
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { withDefaults } from '@sched/core';
import { setWorkflowPaused } from '@sched/store';
import type { PgServer, ZkServer } from '@sched/testkit';
import { type CheckResult, runChecks } from './checker.js';
import { ClusterKeeper, type DaemonExit } from './cluster-keeper.js';
import { countActive, type DatabaseFacts, readDatabaseFacts } from './facts.js';
import { DEFAULT_NEMESIS_OPTIONS, type FaultKind, type FaultRecord, Nemesis } from './nemesis.js';
import { SeededRandom } from './random.js';
import { sleep } from './sleep.js';
import { readTaskLog } from './task-log.js';
import { TestCluster } from './test-cluster.js';
import { scheduledWorkflows, Workload } from './workload.js';

export interface ChaosOptions {
  durationMs: number;
  seed: number;
  /** @defaultValue 4000 */
  sessionTimeoutMs?: number;
  /** @defaultValue 3000 */
  failoverDelayMs?: number;
  /** ZooKeeper connect string (no chroot); default: the shared server of the test run. */
  zkConnect?: string;
  /** Servers the nemesis may kill -9 and restart (an ensemble). */
  zkServers?: ZkServer[];
  pgServer?: Pick<PgServer, 'url'> & Partial<Pick<PgServer, 'restart'>>;
  /**
   * PostgreSQL faults: each master's database link behind its own fault proxy (black holes and
   * cuts), and restarts of `pgServer` when it can be restarted (a private server). @defaultValue false
   */
  pgFaults?: boolean;
  /** Free-form description of the ZooKeeper setup, for the summary. */
  zkDescription?: string;
  /** Progress lines (default: stderr). */
  log?: (line: string) => void;
  /** @defaultValue 5000 */
  warmupMs?: number;
  /** Bound on waiting for every run to be terminal. @defaultValue 120000 */
  quiesceTimeoutMs?: number;
  /** Faults at a time. @defaultValue 2 */
  maxConcurrentFaults?: number;
  /**
   * Negative control: every task escapes its process group (`setsid -w`), so neither self-fencing
   * nor the task supervisor can kill it; the checker must then report overlapping executions.
   */
  /** @defaultValue false */
  escapeTasks?: boolean;
}

export const DEFAULT_CHAOS_OPTIONS = {
  sessionTimeoutMs: 4000,
  failoverDelayMs: 3000,
  warmupMs: 5000,
  quiesceTimeoutMs: 120_000,
  maxConcurrentFaults: DEFAULT_NEMESIS_OPTIONS.maxConcurrent,
  escapeTasks: false,
} as const satisfies Required<
  Pick<
    ChaosOptions,
    | 'sessionTimeoutMs'
    | 'failoverDelayMs'
    | 'warmupMs'
    | 'quiesceTimeoutMs'
    | 'maxConcurrentFaults'
    | 'escapeTasks'
  >
>;

export interface ChaosReport {
  seed: number;
  durationMs: number;
  zk: string;
  sessionTimeoutMs: number;
  failoverDelayMs: number;
  faults: FaultRecord[];
  faultCounts: Record<FaultKind, number>;
  longFaults: number;
  nemesisErrors: string[];
  daemonExits: DaemonExit[];
  restarts: number;
  startFailures: string[];
  windowStartMs: number;
  windowEndMs: number;
  facts: DatabaseFacts;
  executions: number;
  triggers: number;
  checks: CheckResult[];
  /** Folder with the task log and each daemon's output. */
  dataDir: string;
  elapsedMs: number;
}

export async function runChaos(options: ChaosOptions): Promise<ChaosReport> {
  const began = Date.now();
  const opts = withDefaults(options, DEFAULT_CHAOS_OPTIONS);
  const log = opts.log ?? ((line: string) => process.stderr.write(`[chaos] ${line}\n`));
  const { sessionTimeoutMs, failoverDelayMs } = opts;
  const logDir = mkdtempSync(join(tmpdir(), 'sched-chaos-'));
  const cluster = await TestCluster.create({
    zkProxies: true,
    peerProxies: true,
    logDir,
    ...(opts.zkConnect ? { zkConnect: opts.zkConnect } : {}),
    ...(opts.pgServer ? { pgServer: opts.pgServer } : {}),
    ...(opts.pgFaults ? { pgProxies: true } : {}),
    env: {
      SCHED_ZK_SESSION_TIMEOUT: `${sessionTimeoutMs}ms`,
      SCHED_FAILOVER_DELAY: `${failoverDelayMs}ms`,
      SCHED_WORKER_CAPACITY: '8',
      // Long database faults (5–10 s) make a master cut from PostgreSQL step out.
      SCHED_DB_STEP_OUT_AFTER: '5s',
      SCHED_LOG_LEVEL: 'info',
    },
  });
  if (opts.escapeTasks)
    log('negative control: tasks escape their process groups; expect overlapping executions');
  log(`seed ${opts.seed}; nemesis for ${Math.round(opts.durationMs / 1000)} s; daemon logs in ${logDir}`);
  const keeper = new ClusterKeeper(cluster, log);
  // Separate streams, so the trigger loop's timing does not shift the nemesis's choices.
  const workload = new Workload(cluster, new SeededRandom(opts.seed ^ 0x5bd1e995), logDir, opts.escapeTasks);
  const nemesis = new Nemesis(
    keeper,
    new SeededRandom(opts.seed),
    {
      durationMs: opts.durationMs,
      sessionTimeoutMs,
      maxConcurrent: opts.maxConcurrentFaults,
      ...(opts.zkServers ? { zkServers: opts.zkServers } : {}),
      ...(opts.pgFaults
        ? {
            pgFaults: opts.pgServer?.restart
              ? { server: { restart: opts.pgServer.restart.bind(opts.pgServer) } }
              : {},
          }
        : {}),
    },
    log,
  );
  try {
    await keeper.startAll();
    await workload.apply();
    workload.startTriggers();
    await sleep(opts.warmupMs);

    const windowStartMs = Math.ceil(Date.now() / 1000) * 1000;
    log('nemesis starts');
    await nemesis.run();
    log(`healed; ${nemesis.faults.length} faults injected; restarting anything dead`);
    if (!(await keeper.waitAllUp(60_000))) log('not every daemon is up again after 60 s');
    const settleMs = 2 * sessionTimeoutMs + failoverDelayMs + 5000;
    log(`settling for ${settleMs / 1000} s (2 × session timeout + failover delay + 5 s)`);
    await sleep(settleMs);

    await workload.stopTriggering();
    const pausedAtMs = Date.now();
    for (const w of scheduledWorkflows) await setWorkflowPaused(cluster.pool, w.name, true);
    const windowEndMs = Math.floor((pausedAtMs - 3000) / 1000) * 1000;
    log('schedules paused; waiting for every run to finish');
    const quiesceDeadline = Date.now() + opts.quiesceTimeoutMs;
    for (;;) {
      const active = await countActive(cluster);
      if (active.runs === 0 && active.attempts === 0) break;
      if (Date.now() > quiesceDeadline) {
        log(`still active after the quiesce bound: ${active.runs} runs, ${active.attempts} attempts`);
        break;
      }
      await sleep(1000);
    }
    // Orphaned task processes (a worker killed before its supervisor existed) may still be
    // writing; the longest task is ~15 s (healing and settling took longer).
    await sleep(1000);

    // The task log names daemons by node (`worker-2.3`); this maps them to incarnation keys.
    writeFileSync(
      join(logDir, 'nodes.txt'),
      [...keeper.nodeKeys].map(([node, key]) => `${node} ${key}\n`).join(''),
    );
    const facts = await readDatabaseFacts(cluster);
    // The database's own account, kept beside the logs: what an investigation starts from.
    for (const table of ['runs', 'task_attempts', 'commands', 'failovers']) {
      const rows = await cluster.query(`SELECT * FROM ${table} ORDER BY id`).catch(() => []);
      writeFileSync(join(logDir, `${table}.json`), `${JSON.stringify(rows, null, 1)}\n`);
    }
    const taskLog = readTaskLog(workload.taskLog);
    const checks = runChecks({
      windowStartMs,
      windowEndMs,
      schedules: facts.schedules,
      runs: facts.runs,
      attempts: facts.attempts,
      executions: taskLog.executions,
      malformedLogLines: taskLog.malformed,
      triggerCommandIds: workload.triggerCommandIds,
    });
    // Expected exits: 3 = a failed-over zombie; 4 = a master that stepped out, cut from PostgreSQL.
    const crashes = keeper.unexpectedExits.filter((e) => e.code !== 3 && e.code !== 4);
    checks.push({
      name: 'no daemon crashed',
      passed: crashes.length === 0,
      examined: `${keeper.unexpectedExits.length} exits not caused by the nemesis (code 3 = a failed-over zombie, 4 = a master cut from PostgreSQL that stepped out; both expected)`,
      violations: crashes.map((e) => `${e.slot} ${e.key} exited with code ${e.code}, signal ${e.signal}`),
    });
    const harness = [
      ...nemesis.errors.map((e) => `nemesis: ${e}`),
      ...(workload.triggerErrors > 0
        ? [
            `${workload.triggerErrors} manual triggers whose insert got no answer could not be looked up afterwards`,
          ]
        : []),
      ...keeper.slots.filter((s) => s.state !== 'up').map((s) => `${s.name} is not up at the end`),
    ];
    checks.push({
      name: 'harness healthy',
      passed: harness.length === 0,
      examined: `faults undone, every trigger settled (${workload.triggersNotQueued} never queued: PostgreSQL was down), every daemon up at the end`,
      violations: harness,
    });
    return {
      seed: opts.seed,
      durationMs: opts.durationMs,
      zk: opts.zkDescription ?? 'one ZooKeeper server',
      sessionTimeoutMs,
      failoverDelayMs,
      faults: nemesis.faults,
      faultCounts: nemesis.countByKind(),
      longFaults: nemesis.faults.filter((f) => f.long).length,
      nemesisErrors: nemesis.errors,
      daemonExits: keeper.unexpectedExits,
      restarts: keeper.restarts,
      startFailures: keeper.startFailures,
      windowStartMs,
      windowEndMs,
      facts,
      executions: taskLog.executions.length,
      triggers: workload.triggerCommandIds.length,
      checks,
      dataDir: logDir,
      elapsedMs: Date.now() - began,
    };
  } finally {
    keeper.close();
    await nemesis.heal();
    await workload.stopTriggering();
    await cluster.stop();
  }
}
