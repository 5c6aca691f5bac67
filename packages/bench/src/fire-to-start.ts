// Shared by `bench trigger` and `bench herd`: real daemons (sched-master, sched-worker) with the
// product's default settings on a private ZooKeeper and PostgreSQL, N cron schedules, and what a
// user feels: when each scheduled task *starts* on the worker, against its fire time.
//
//   fire-to-start = task_attempts.started_at (the worker's clock when it started the task)
//                   − runs.fire_time (the schedule's fire time), first attempt of each run
//   done-in-5s    = runs that succeeded with ended_at − fire_time ≤ 5 s
//   misses        = fire times in the window without a run; duplicates = extra runs
import { TestCluster } from '@sched/chaos';
import { startPostgres, startZooKeeper } from '@sched/testkit';

export const say = (line: string) => process.stdout.write(`${line}\n`);
export const round = (n: number, d = 1) => Math.round(n * 10 ** d) / 10 ** d;
export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return Number.NaN;
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[i] as number;
}

export interface Distribution {
  p50: number;
  p99: number;
  max: number;
}

export function distribution(values: number[]): Distribution {
  const sorted = [...values].sort((a, b) => a - b);
  return {
    p50: round(percentile(sorted, 50)),
    p99: round(percentile(sorted, 99)),
    max: round(sorted.at(-1) ?? Number.NaN),
  };
}

export interface FireWindowFigures {
  expected: number;
  runs: number;
  misses: number;
  duplicates: number;
  /** Runs whose first attempt started. */
  started: number;
  fireToStartMs: Distribution;
  /** Latest start − fire time, per fire time (herds). */
  spreadMs: number;
  /** Share of expected fires whose run succeeded within 5 s of its fire time, in %. */
  doneWithin5sPercent: number;
  notSucceeded: number;
}

/** A cluster with one master and one worker at default settings, plus its servers. */
export interface DefaultsCluster {
  cluster: TestCluster;
  stop(): Promise<void>;
}

export async function startDefaultsCluster(opts: {
  workers?: number;
  env?: Record<string, string>;
  nodeArgs?: string[];
}): Promise<DefaultsCluster> {
  const zk = await startZooKeeper();
  const pg = await startPostgres();
  const cluster = await TestCluster.create({
    zkConnect: zk.connectString,
    pgServer: pg,
    productDefaults: true,
    env: opts.env ?? {},
    // The daemons' output, kept for a look afterwards.
    ...(process.env.SCHED_BENCH_LOG_DIR ? { logDir: process.env.SCHED_BENCH_LOG_DIR } : {}),
    ...(opts.nodeArgs ? { nodeArgs: opts.nodeArgs } : {}),
  });
  return {
    cluster,
    async stop() {
      await cluster.stop().catch(() => {});
      await zk.stop().catch(() => {});
      await pg.stop().catch(() => {});
    },
  };
}

/** Applies `count` workflows `<prefix>-<i>`, each with `cron` and one noop task, in chunks. */
export async function applyCronWorkflows(
  cluster: TestCluster,
  prefix: string,
  count: number,
  cron: (i: number) => string,
): Promise<void> {
  for (let base = 0; base < count; base += 1000) {
    const raw = Array.from({ length: Math.min(1000, count - base) }, (_, k) => ({
      name: `${prefix}-${base + k}`,
      schedule: { cron: cron(base + k), misfire: 'fire-once-now' },
      tasks: [{ name: 'noop', type: 'noop' }],
    }));
    await cluster.apply(...raw);
  }
}

/** The master starts firing schedules it did not have when it started within its pre-read window. */
export async function waitForArmed(cluster: TestCluster, prefix: string, count: number): Promise<void> {
  const deadline = Date.now() + 60_000;
  for (;;) {
    const [row] = await cluster.query<{ n: number }>(
      `SELECT count(*)::int AS n FROM schedules s JOIN workflows w ON w.id = s.workflow_id
        WHERE w.name LIKE $1 AND s.next_fire_time IS NOT NULL`,
      [`${prefix}-%`],
    );
    if ((row?.n ?? 0) >= count) return;
    if (Date.now() > deadline) throw new Error(`only ${row?.n} of ${count} schedules were applied`);
    await sleep(200);
  }
}

/**
 * Figures for the runs of workflows `<prefix>-*` whose fire time is in [fromMs, toMs), given the
 * fire times each schedule was due at in it (`expectedFireTimes`).
 */
export async function fireWindowFigures(
  cluster: TestCluster,
  prefix: string,
  fromMs: number,
  toMs: number,
  expected: number,
): Promise<FireWindowFigures> {
  const [counts] = await cluster.query<{ runs: number; fires: number; done5: number; bad: number }>(
    `SELECT count(*)::int AS runs, count(DISTINCT (r.schedule_id, r.fire_time))::int AS fires,
            count(*) FILTER (WHERE r.state = 'succeeded' AND r.ended_at - r.fire_time <= interval '5 seconds')::int AS done5,
            count(*) FILTER (WHERE r.state IS DISTINCT FROM 'succeeded')::int AS bad
       FROM runs r JOIN workflows w ON w.id = r.workflow_id
      WHERE w.name LIKE $1 AND r.fire_time >= $2 AND r.fire_time < $3`,
    [`${prefix}-%`, new Date(fromMs), new Date(toMs)],
  );
  const starts = await cluster.query<{ ms: number; fire: number }>(
    `SELECT (extract(epoch FROM a.started_at - r.fire_time) * 1000)::float8 AS ms,
            (extract(epoch FROM r.fire_time) * 1000)::float8 AS fire
       FROM runs r JOIN workflows w ON w.id = r.workflow_id
       JOIN task_attempts a ON a.run_id = r.id AND a.attempt = 1
      WHERE w.name LIKE $1 AND r.fire_time >= $2 AND r.fire_time < $3 AND a.started_at IS NOT NULL`,
    [`${prefix}-%`, new Date(fromMs), new Date(toMs)],
  );
  const latestPerFire = new Map<number, number>();
  for (const s of starts) latestPerFire.set(s.fire, Math.max(latestPerFire.get(s.fire) ?? 0, s.ms));
  const runs = counts?.runs ?? 0;
  const fires = counts?.fires ?? 0;
  return {
    expected,
    runs,
    misses: expected - fires,
    duplicates: runs - fires,
    started: starts.length,
    fireToStartMs: distribution(starts.map((s) => s.ms)),
    spreadMs: round(Math.max(0, ...latestPerFire.values())),
    doneWithin5sPercent: expected === 0 ? 0 : round(((counts?.done5 ?? 0) / expected) * 100, 2),
    notSucceeded: counts?.bad ?? 0,
  };
}

export function describeWindow(f: FireWindowFigures): string {
  return [
    `fires expected ${f.expected}, runs ${f.runs}, misses ${f.misses}, duplicates ${f.duplicates}, not succeeded ${f.notSucceeded}`,
    `fire-to-start (task started on the worker − fire time): p50 ${f.fireToStartMs.p50} ms, p99 ${f.fireToStartMs.p99} ms, max ${f.fireToStartMs.max} ms (${f.started} starts)`,
    `runs succeeded within 5 s of their fire time: ${f.doneWithin5sPercent} %`,
  ].join('\n');
}

export function parseIntFlags<T extends Record<string, number>>(
  bench: string,
  args: string[],
  defaults: T,
): T {
  const out: Record<string, number> = { ...defaults };
  for (let i = 0; i < args.length; i += 2) {
    const flag = args[i] as string;
    const key = flag.replace(/^--/, '').replace(/-([a-z])/g, (_, c: string) => c.toUpperCase());
    if (!(key in defaults)) {
      const accepted = Object.keys(defaults)
        .map((k) => `--${k.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)} N`)
        .join(', ');
      throw new Error(`bench ${bench}: unknown option ${flag}; accepted: ${accepted}`);
    }
    const n = Number(args[i + 1]);
    if (!Number.isInteger(n) || n < 1) {
      throw new Error(`bench ${bench}: ${flag} needs a positive integer, got ${args[i + 1] ?? 'nothing'}`);
    }
    out[key] = n;
  }
  return out as T;
}
