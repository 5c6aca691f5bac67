// `npm run bench -- throughput [--runs N] [--shell-runs N] [--warmup N] [--profile DIR]`
//
// End-to-end throughput at DEFAULT settings: runs from trigger to "run succeeded" (trigger →
// claim → dispatch → execute → report → run succeeded) with real daemons (sched-master,
// sched-worker processes) on a private ZooKeeper and PostgreSQL, in four set-ups:
//   single    one workflow with one noop task, 1 master + 1 worker
//   single-2w the same with 1 master + 2 workers
//   many      1,000 distinct workflows (one noop task each), triggered in a random mix
//   shell     one workflow whose task is `shell: true` (a process per attempt)
// Then, on the same PostgreSQL, pg-boss (send → work → complete) and graphile-worker
// (add_job → task → complete) with a no-op job, and sched's ratio to each.
//
// Targets (2 cores, defaults): single ≥ 5,000 runs/s, many ≥ 3,000 runs/s, shell ≥ 300 runs/s,
// ratio to pg-boss ≥ 2; the ratio to graphile-worker is stated, whatever it is.
// Prints figures as it goes and ends with one JSON line.
import { TestCluster } from '@sched/chaos';
import { createDatabase, type PgServer, startPostgres, startZooKeeper } from '@sched/testkit';
import { Logger, run as runGraphile } from 'graphile-worker';
import pg from 'pg';
import PgBoss from 'pg-boss';
import { distribution, round, say } from './fire-to-start.js';

interface Options {
  runs: number;
  shellRuns: number;
  warmup: number;
  /** Folder for V8 CPU profiles of the daemons (`--profile DIR`). */
  profileDir: string | null;
}

function parseArgs(args: string[]): Options {
  const opts: Options = { runs: 20_000, shellRuns: 3_000, warmup: 2_000, profileDir: null };
  for (let i = 0; i < args.length; i += 2) {
    const flag = args[i];
    if (flag === '--profile') {
      opts.profileDir = args[i + 1] ?? null;
      continue;
    }
    const n = Number(args[i + 1]);
    if (!Number.isInteger(n) || n < 1) throw new Error(`bench throughput: ${flag} needs a positive integer`);
    if (flag === '--runs') opts.runs = n;
    else if (flag === '--shell-runs') opts.shellRuns = n;
    else if (flag === '--warmup') opts.warmup = n;
    else
      throw new Error(
        `bench throughput: unknown option ${flag}; accepted: --runs N, --shell-runs N, --warmup N, --profile DIR`,
      );
  }
  return opts;
}

type Mode = 'single' | 'single-2w' | 'many' | 'shell';

interface SchedFigures {
  mode: Mode;
  workers: number;
  workflows: number;
  runs: number;
  seconds: number;
  runsPerSecond: number;
  /** Run created (trigger claimed) → task started on the worker. */
  runToStartMs: { p50: number; p99: number; max: number };
}

/** Queues `n` trigger commands spread over the workflows named `<prefix>-*` (random order). */
async function enqueueTriggers(cluster: TestCluster, prefix: string, n: number, workflows: number) {
  for (let done = 0; done < n; done += 10_000) {
    const count = Math.min(10_000, n - done);
    await cluster.query(
      `INSERT INTO commands (kind, workflow_id, requested_by)
       SELECT 'trigger', w.id, 'bench'
         FROM generate_series(0, $2 - 1) g
         JOIN workflows w ON w.name = $1 || '-' || ((g + $3) % $4)
        ORDER BY random()`,
      [prefix, count, done, workflows],
    );
  }
  await cluster.query(`SELECT pg_notify('sched_commands', 'bench')`);
}

async function waitForSucceeded(cluster: TestCluster, prefix: string, n: number, timeoutMs: number) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const [row] = await cluster.query<{ done: number; failed: number }>(
      `SELECT count(*) FILTER (WHERE r.state = 'succeeded')::int AS done,
              count(*) FILTER (WHERE r.state IN ('failed', 'cancelled'))::int AS failed
         FROM runs r JOIN workflows w ON w.id = r.workflow_id WHERE w.name LIKE $1`,
      [`${prefix}-%`],
    );
    if ((row?.failed ?? 0) > 0) throw new Error(`bench throughput: ${row?.failed} runs did not succeed`);
    if ((row?.done ?? 0) >= n) return;
    if (Date.now() > deadline) {
      throw new Error(`bench throughput: only ${row?.done} of ${n} runs succeeded within ${timeoutMs} ms`);
    }
    await new Promise((r) => setTimeout(r, 20));
  }
}

async function applyWorkflows(cluster: TestCluster, prefix: string, count: number, task: object) {
  for (let base = 0; base < count; base += 1000) {
    const raw = Array.from({ length: Math.min(1000, count - base) }, (_, k) => ({
      name: `${prefix}-${base + k}`,
      tasks: [{ name: 'only', ...task }],
    }));
    await cluster.apply(...raw);
  }
}

async function measureSched(zkConnect: string, pgServer: PgServer, mode: Mode, opts: Options) {
  const cluster = await TestCluster.create({
    zkConnect,
    pgServer,
    productDefaults: true,
    env: {},
    ...(opts.profileDir ? { nodeArgs: ['--cpu-prof', `--cpu-prof-dir=${opts.profileDir}`] } : {}),
  });
  const workers = mode === 'single-2w' ? 2 : 1;
  const workflows = mode === 'many' ? 1000 : 1;
  const task = mode === 'shell' ? { type: 'shell', command: 'true' } : { type: 'noop' };
  const runs = mode === 'shell' ? opts.shellRuns : opts.runs;
  const warmup = Math.min(opts.warmup, runs);
  try {
    await cluster.startMaster();
    for (let i = 0; i < workers; i++) await cluster.startWorker();
    await applyWorkflows(cluster, 'warm', workflows, task);
    await applyWorkflows(cluster, 'bench', workflows, task);
    // Let the master see every worker before measuring.
    await new Promise((r) => setTimeout(r, 1_500));

    await enqueueTriggers(cluster, 'warm', warmup, workflows);
    await waitForSucceeded(cluster, 'warm', warmup, 300_000);

    const t0 = performance.now();
    await enqueueTriggers(cluster, 'bench', runs, workflows);
    await waitForSucceeded(cluster, 'bench', runs, 600_000);
    const seconds = (performance.now() - t0) / 1000;

    const rows = await cluster.query<{ ms: number }>(
      `SELECT (extract(epoch FROM a.started_at - r.created_at) * 1000)::float8 AS ms
         FROM task_attempts a JOIN runs r ON r.id = a.run_id JOIN workflows w ON w.id = r.workflow_id
        WHERE w.name LIKE 'bench-%' AND a.attempt = 1`,
    );
    const figures: SchedFigures = {
      mode,
      workers,
      workflows,
      runs,
      seconds: round(seconds, 2),
      runsPerSecond: round(runs / seconds, 0),
      runToStartMs: distribution(rows.map((r) => r.ms)),
    };
    say(
      `sched ${mode} (${workflows} workflow${workflows > 1 ? 's' : ''}, ${workers} worker${workers > 1 ? 's' : ''}, ${mode === 'shell' ? 'shell: true' : 'noop'}): ${figures.runsPerSecond} runs/s (${runs} runs in ${figures.seconds} s); run created → task started p50 ${figures.runToStartMs.p50} ms, p99 ${figures.runToStartMs.p99} ms`,
    );
    return figures;
  } finally {
    await cluster.stop();
  }
}

async function measurePgBoss(dbUrl: string, jobs: number) {
  const boss = new PgBoss({ connectionString: dbUrl, max: 8, supervise: false, schedule: false });
  boss.on('error', () => {});
  await boss.start();
  try {
    await boss.createQueue('bench');
    let done = 0;
    let resolveDone!: () => void;
    const allDone = new Promise<void>((r) => {
      resolveDone = r;
    });
    const t0 = performance.now();
    // send: in batches, as sched's triggers are inserted in one statement.
    for (let i = 0; i < jobs; i += 1000) {
      const n = Math.min(1000, jobs - i);
      await boss.insert(Array.from({ length: n }, (_, k) => ({ name: 'bench', data: { i: i + k } })));
    }
    // work → complete: pg-boss completes a batch when the handler resolves. Several workers, as
    // a sched worker runs many tasks at once; the shortest polling interval pg-boss allows.
    for (let w = 0; w < 4; w++) {
      await boss.work('bench', { batchSize: 250, pollingIntervalSeconds: 0.5 }, async (batch) => {
        done += batch.length;
        if (done >= jobs) resolveDone();
      });
    }
    await allDone;
    // Wait for the last completions to be written.
    for (;;) {
      const size = await boss.getQueueSize('bench', { before: 'completed' });
      if (size === 0) break;
      await new Promise((r) => setTimeout(r, 20));
    }
    const seconds = (performance.now() - t0) / 1000;
    const figures = { jobs, seconds: round(seconds, 2), jobsPerSecond: round(jobs / seconds, 0) };
    say(`pg-boss send → work → complete: ${figures.jobsPerSecond} jobs/s (${figures.seconds} s)`);
    return figures;
  } finally {
    await boss.stop({ graceful: false, wait: true }).catch(() => {});
  }
}

/**
 * graphile-worker add_job → task → complete, with a no-op task: jobs added in bulk with SQL (as
 * sched's triggers are), one runner with concurrency 10 (its documented knob for throughput).
 */
async function measureGraphile(dbUrl: string, jobs: number) {
  const pool = new pg.Pool({ connectionString: dbUrl, max: 12 });
  let handled = 0;
  let resolveDone!: () => void;
  const allDone = new Promise<void>((r) => {
    resolveDone = r;
  });
  const runner = await runGraphile({
    pgPool: pool,
    concurrency: 10,
    pollInterval: 500,
    noHandleSignals: true,
    // Quiet: its default logger prints a line per job, which would cost it throughput.
    logger: new Logger(() => () => {}),
    taskList: {
      bench: async () => {
        handled += 1;
        if (handled >= jobs) resolveDone();
      },
    },
  });
  try {
    const t0 = performance.now();
    for (let i = 0; i < jobs; i += 1000) {
      await pool.query(
        `SELECT graphile_worker.add_job('bench', json_build_object('i', g)) FROM generate_series($1::int, $2::int) g`,
        [i, Math.min(jobs, i + 1000) - 1],
      );
    }
    await allDone;
    // Completed jobs are deleted: done when none is left.
    for (;;) {
      const { rows } = await pool.query<{ n: number }>('SELECT count(*)::int AS n FROM graphile_worker.jobs');
      if ((rows[0]?.n ?? 0) === 0) break;
      await new Promise((r) => setTimeout(r, 20));
    }
    const seconds = (performance.now() - t0) / 1000;
    const figures = { jobs, seconds: round(seconds, 2), jobsPerSecond: round(jobs / seconds, 0) };
    say(`graphile-worker add_job → task → complete: ${figures.jobsPerSecond} jobs/s (${figures.seconds} s)`);
    return figures;
  } finally {
    await runner.stop().catch(() => {});
    await pool.end().catch(() => {});
  }
}

export async function run(args: string[]): Promise<void> {
  const opts = parseArgs(args);
  const zk = await startZooKeeper();
  const pgServer = await startPostgres();
  try {
    say(
      `throughput at default settings: ${opts.runs} noop runs per set-up (${opts.shellRuns} for shell) after ${opts.warmup} warm-up runs`,
    );
    const sched: Record<Mode, SchedFigures> = {} as Record<Mode, SchedFigures>;
    for (const mode of ['single', 'single-2w', 'many', 'shell'] as const) {
      sched[mode] = await measureSched(zk.connectString, pgServer, mode, opts);
    }
    const boss = await measurePgBoss((await createDatabase(pgServer)).url, opts.runs);
    const graphile = await measureGraphile((await createDatabase(pgServer)).url, opts.runs);
    const single = sched.single.runsPerSecond;
    const ratioPgBoss = round(sched.single.runsPerSecond / boss.jobsPerSecond, 2);
    const ratioGraphile = round(sched.single.runsPerSecond / graphile.jobsPerSecond, 2);
    const met = {
      single: single >= 5000,
      many: sched.many.runsPerSecond >= 3000,
      shell: sched.shell.runsPerSecond >= 300,
      ratioPgBoss: ratioPgBoss >= 2,
    };
    say(
      `ratios (sched single-workflow noop, 1 worker): ÷ pg-boss ${ratioPgBoss} (target ≥ 2), ÷ graphile-worker ${ratioGraphile}`,
    );
    say(
      `targets: single ≥ 5000 runs/s (1 worker; with 2 workers ${sched['single-2w'].runsPerSecond}) ${met.single ? 'met' : 'NOT met'}; many ≥ 3000 ${met.many ? 'met' : 'NOT met'}; shell ≥ 300 ${met.shell ? 'met' : 'NOT met'}; ratio to pg-boss ≥ 2 ${met.ratioPgBoss ? 'met' : 'NOT met'}`,
    );
    say(
      JSON.stringify({
        bench: 'throughput',
        settings: 'defaults',
        sched,
        pgBoss: boss,
        graphileWorker: graphile,
        ratios: { pgBoss: ratioPgBoss, graphileWorker: ratioGraphile },
        targets: {
          singleRunsPerSecond: 5000,
          manyRunsPerSecond: 3000,
          shellRunsPerSecond: 300,
          ratioPgBoss: 2,
        },
        met: { ...met, all: Object.values(met).every(Boolean) },
      }),
    );
  } finally {
    await zk.stop().catch(() => {});
    await pgServer.stop().catch(() => {});
  }
}
