// `npm run bench -- throughput [--runs N] [--pgboss-jobs N]`
//
// End-to-end throughput (issue 5, acceptance 7): single-`noop`-task workflows, from trigger to
// "run succeeded" (trigger → claim → dispatch → execute → report → run succeeded), with real
// daemons (1 master + 1 worker, then 1 master + 2 workers) on a private ZooKeeper and
// PostgreSQL; plus dispatch latency (attempt dispatched_at − run created_at). Then, on the same
// PostgreSQL, pg-boss doing send → work → complete for the same number of jobs, and the ratio.
//
// Target on the 2-core machine: ≥ 3,000 runs/s and a ratio ≥ 1.0. Prints figures as it goes and
// ends with one JSON line.
import { TestCluster } from '@sched/chaos';
import { createDatabase, type PgServer, startPostgres, startZooKeeper } from '@sched/testkit';
import PgBoss from 'pg-boss';

interface Options {
  runs: number;
  warmup: number;
  /** Folder for V8 CPU profiles of the daemons (`--profile DIR`). */
  profileDir: string | null;
}

function parseArgs(args: string[]): Options {
  const opts: Options = { runs: 20_000, warmup: 2_000, profileDir: null };
  for (let i = 0; i < args.length; i += 2) {
    const flag = args[i];
    if (flag === '--profile') {
      opts.profileDir = args[i + 1] ?? null;
      continue;
    }
    const n = Number(args[i + 1]);
    if (!Number.isInteger(n) || n < 1) throw new Error(`bench throughput: ${flag} needs a positive integer`);
    if (flag === '--runs') opts.runs = n;
    else if (flag === '--warmup') opts.warmup = n;
    else
      throw new Error(
        `bench throughput: unknown option ${flag}; accepted: --runs N, --warmup N, --profile DIR`,
      );
  }
  return opts;
}

function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] as number;
}

const round = (x: number, d = 1) => Math.round(x * 10 ** d) / 10 ** d;

interface SchedFigures {
  workers: number;
  runs: number;
  seconds: number;
  runsPerSecond: number;
  dispatchLatencyMs: { p50: number; p99: number; max: number };
}

/** Queues `n` trigger commands in one statement; returns when they are committed. */
async function enqueueTriggers(cluster: TestCluster, workflow: string, n: number): Promise<void> {
  await cluster.query(
    `INSERT INTO commands (kind, workflow_id, requested_by)
     SELECT 'trigger', w.id, 'bench' FROM workflows w, generate_series(1, $2) WHERE w.name = $1`,
    [workflow, n],
  );
  await cluster.query(`SELECT pg_notify('sched_commands', 'bench')`);
}

async function waitForSucceeded(
  cluster: TestCluster,
  workflow: string,
  n: number,
  timeoutMs: number,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const [row] = await cluster.query<{ done: number; failed: number }>(
      `SELECT count(*) FILTER (WHERE r.state = 'succeeded')::int AS done,
              count(*) FILTER (WHERE r.state IN ('failed', 'cancelled'))::int AS failed
         FROM runs r JOIN workflows w ON w.id = r.workflow_id WHERE w.name = $1`,
      [workflow],
    );
    if ((row?.failed ?? 0) > 0) throw new Error(`bench throughput: ${row?.failed} runs did not succeed`);
    if ((row?.done ?? 0) >= n) return;
    if (Date.now() > deadline) {
      throw new Error(`bench throughput: only ${row?.done} of ${n} runs succeeded within ${timeoutMs} ms`);
    }
    await new Promise((r) => setTimeout(r, 20));
  }
}

async function measureSched(
  zkConnect: string,
  pgServer: PgServer,
  workers: number,
  opts: Options,
): Promise<SchedFigures> {
  const cluster = await TestCluster.create({
    zkConnect,
    pgServer,
    env: {
      SCHED_LOG_LEVEL: 'warn',
      SCHED_WORKER_CAPACITY: '2000',
      SCHED_DB_POOL_SIZE: '8',
    },
    ...(opts.profileDir ? { nodeArgs: ['--cpu-prof', `--cpu-prof-dir=${opts.profileDir}`] } : {}),
  });
  try {
    await cluster.startMaster();
    for (let i = 0; i < workers; i++) await cluster.startWorker();
    await cluster.apply({ name: 'noop-warmup', tasks: [{ name: 'noop', type: 'noop' }] });
    await cluster.apply({ name: 'noop-bench', tasks: [{ name: 'noop', type: 'noop' }] });
    // Let the master see every worker before measuring.
    await new Promise((r) => setTimeout(r, 1_500));

    await enqueueTriggers(cluster, 'noop-warmup', opts.warmup);
    await waitForSucceeded(cluster, 'noop-warmup', opts.warmup, 120_000);

    const t0 = performance.now();
    await enqueueTriggers(cluster, 'noop-bench', opts.runs);
    await waitForSucceeded(cluster, 'noop-bench', opts.runs, 300_000);
    const seconds = (performance.now() - t0) / 1000;

    const rows = await cluster.query<{ ms: number }>(
      `SELECT (extract(epoch FROM a.dispatched_at - r.created_at) * 1000)::float8 AS ms
         FROM task_attempts a JOIN runs r ON r.id = a.run_id JOIN workflows w ON w.id = r.workflow_id
        WHERE w.name = 'noop-bench' ORDER BY 1`,
    );
    const lat = rows.map((r) => r.ms);
    return {
      workers,
      runs: opts.runs,
      seconds: round(seconds, 2),
      runsPerSecond: round(opts.runs / seconds, 0),
      dispatchLatencyMs: {
        p50: round(percentile(lat, 50)),
        p99: round(percentile(lat, 99)),
        max: round(lat.at(-1) ?? Number.NaN),
      },
    };
  } finally {
    await cluster.stop();
  }
}

async function measurePgBoss(
  dbUrl: string,
  jobs: number,
): Promise<{ jobs: number; seconds: number; jobsPerSecond: number }> {
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
    return { jobs, seconds: round(seconds, 2), jobsPerSecond: round(jobs / seconds, 0) };
  } finally {
    await boss.stop({ graceful: false, wait: true }).catch(() => {});
  }
}

export async function run(args: string[]): Promise<void> {
  const opts = parseArgs(args);
  const zk = await startZooKeeper();
  const pg = await startPostgres();
  try {
    console.log(`throughput: ${opts.runs} single-noop runs after ${opts.warmup} warm-up runs`);
    const one = await measureSched(zk.connectString, pg, 1, opts);
    console.log(
      `sched 1 master + 1 worker:  ${one.runsPerSecond} runs/s (${one.seconds} s); dispatch latency p50 ${one.dispatchLatencyMs.p50} ms, p99 ${one.dispatchLatencyMs.p99} ms`,
    );
    const two = await measureSched(zk.connectString, pg, 2, opts);
    console.log(
      `sched 1 master + 2 workers: ${two.runsPerSecond} runs/s (${two.seconds} s); dispatch latency p50 ${two.dispatchLatencyMs.p50} ms, p99 ${two.dispatchLatencyMs.p99} ms`,
    );
    const { url } = await createDatabase(pg);
    const boss = await measurePgBoss(url, opts.runs);
    console.log(`pg-boss send → work → complete: ${boss.jobsPerSecond} jobs/s (${boss.seconds} s)`);
    const best = Math.max(one.runsPerSecond, two.runsPerSecond);
    const worst = Math.min(one.runsPerSecond, two.runsPerSecond);
    const ratio = round(best / boss.jobsPerSecond, 2);
    console.log(
      `ratio sched ÷ pg-boss: ${ratio} (target ≥ 1.0); target ≥ 3000 runs/s in both set-ups: ${worst >= 3000 ? 'met' : 'NOT met'}`,
    );
    console.log(
      JSON.stringify({
        bench: 'throughput',
        sched: { oneWorker: one, twoWorkers: two },
        pgBoss: boss,
        ratio,
        targets: { runsPerSecond: 3000, ratio: 1.0 },
        met: worst >= 3000 && ratio >= 1.0,
      }),
    );
  } finally {
    await zk.stop().catch(() => {});
    await pg.stop().catch(() => {});
  }
}
