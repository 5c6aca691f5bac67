// `npm run bench -- trigger [--schedules N] [--seconds S] [--warmup S]`
//
// Trigger precision (issue 4, acceptance 5): N schedules firing every second for S seconds on
// ONE master (an in-process ScheduleFirer) against a private PostgreSQL. Figures:
//   lag        = run row committed (the fire statement returned) − scheduled fire time, per run
//   insertLag  = runs.created_at − fire time (0 for pre-staged fires, which record their fire time and commit at it)
//   misses     = (schedule, second) pairs in the window without a run; duplicates = extra runs
// Targets on a 2-core machine: p99 ≤ 20 ms, max ≤ 100 ms, 0 misses, 0 duplicates.
// Prints figures as it goes and ends with one JSON line.
import { createLogger } from '@sched/core';
import { type FiredRun, ScheduleFirer } from '@sched/master';
import { applyDefinitions, compileDefinitions, createPool, migrate } from '@sched/store';
import { createDatabase, startPostgres } from '@sched/testkit';

interface Options {
  schedules: number;
  seconds: number;
  warmup: number;
  batch: number;
  prestage: number;
}

function parseArgs(args: string[]): Options {
  const opts: Options = { schedules: 1000, seconds: 60, warmup: 3, batch: 250, prestage: 300 };
  for (let i = 0; i < args.length; i += 2) {
    const flag = args[i] as string;
    const n = Number(args[i + 1]);
    if (!Number.isInteger(n) || n < 1)
      throw new Error(`bench trigger: ${flag} needs a positive integer, got ${args[i + 1]}`);
    if (flag === '--schedules') opts.schedules = n;
    else if (flag === '--seconds') opts.seconds = n;
    else if (flag === '--warmup') opts.warmup = n;
    else if (flag === '--batch') opts.batch = n;
    else if (flag === '--prestage') opts.prestage = n;
    else
      throw new Error(
        `bench trigger: unknown option ${flag}; accepted: --schedules N, --seconds S, --warmup S, --batch N, --prestage MS`,
      );
  }
  return opts;
}

const say = (line: string) => process.stdout.write(`${line}\n`);

export function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return Number.NaN;
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[i] as number;
}

const round = (n: number) => Math.round(n * 10) / 10;

export async function run(args: string[]): Promise<void> {
  const opts = parseArgs(args);
  say(`trigger: ${opts.schedules} schedules every second for ${opts.seconds} s on one master`);
  const pg = await startPostgres();
  try {
    const db = await createDatabase(pg, { prefix: 'bench_trigger' });
    await migrate(db.url);
    const pool = createPool(db.url, { max: 8, applicationName: 'bench-trigger' });
    const defs = compileDefinitions(
      Array.from({ length: opts.schedules }, (_, i) => ({
        label: `t${i}`,
        value: {
          name: `tick-${i}`,
          schedule: { cron: '* * * * * *', misfire: 'skip', misfireThreshold: '5s' },
          tasks: [{ name: 'noop', type: 'noop' }],
        },
      })),
    );
    const t0 = performance.now();
    await applyDefinitions(pool, defs);
    say(`applied ${defs.length} definitions in ${Math.round(performance.now() - t0)} ms`);

    const lags: number[] = [];
    let windowStart = 0;
    let windowEnd = 0;
    const firer = new ScheduleFirer({
      pool,
      self: '127.0.0.1:0_bench',
      liveMasters: () => ['127.0.0.1:0_bench'],
      leaseValid: () => true,
      logger: createLogger({ level: 'warn', name: 'bench' }),
      options: { batchMax: opts.batch, prestageMs: opts.prestage },
      onRunsCreated: (runs: FiredRun[]) => {
        for (const r of runs)
          if (r.fireTimeMs >= windowStart && r.fireTimeMs < windowEnd)
            lags.push(r.committedAtMs - r.fireTimeMs);
      },
    });
    const startedAt = Date.now();
    windowStart = Math.ceil((startedAt + opts.warmup * 1000) / 1000) * 1000;
    windowEnd = windowStart + opts.seconds * 1000;
    firer.start();
    const cpu0 = process.cpuUsage();
    while (Date.now() < windowEnd + 2000) {
      await new Promise((r) => setTimeout(r, 5000));
      const done = Math.max(0, Math.min(opts.seconds, Math.floor((Date.now() - windowStart) / 1000)));
      if (Date.now() > windowStart) say(`  ${done}/${opts.seconds} s, ${lags.length} runs measured`);
    }
    const cpu = process.cpuUsage(cpu0);
    await firer.stop();

    const { rows } = await pool.query(
      `SELECT count(*)::int AS runs, count(DISTINCT (schedule_id, fire_time))::int AS distinct_fires,
              percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM created_at - fire_time) * 1000) AS p50,
              percentile_cont(0.99) WITHIN GROUP (ORDER BY extract(epoch FROM created_at - fire_time) * 1000) AS p99,
              max(extract(epoch FROM created_at - fire_time) * 1000) AS max,
              min(extract(epoch FROM created_at - fire_time) * 1000) AS min
         FROM runs WHERE fire_time >= $1 AND fire_time < $2`,
      [new Date(windowStart), new Date(windowEnd)],
    );
    const r = rows[0];
    const expected = opts.schedules * opts.seconds;
    const misses = expected - r.distinct_fires;
    const duplicates = r.runs - r.distinct_fires;
    lags.sort((a, b) => a - b);
    const lag = {
      p50: round(percentile(lags, 50)),
      p99: round(percentile(lags, 99)),
      max: round(lags[lags.length - 1] ?? Number.NaN),
    };
    const insertLag = {
      p50: round(Number(r.p50)),
      p99: round(Number(r.p99)),
      max: round(Number(r.max)),
      min: round(Number(r.min)),
    };
    const cpuPercent = round(((cpu.user + cpu.system) / 1000 / (windowEnd + 2000 - startedAt)) * 100);
    say(`fires expected ${expected}, runs ${r.runs}, misses ${misses}, duplicates ${duplicates}`);
    say(`lag (committed − fire time): p50 ${lag.p50} ms, p99 ${lag.p99} ms, max ${lag.max} ms`);
    say(
      `created_at − fire time (0 = pre-staged, committed at the fire time): p50 ${insertLag.p50} ms, p99 ${insertLag.p99} ms, max ${insertLag.max} ms, min ${insertLag.min} ms`,
    );
    say(
      `firer: ${firer.stats.fireStatements} fire statements, ${firer.stats.casLost} CAS lost, ${firer.stats.errors} errors; master CPU ${cpuPercent} % of one core`,
    );
    const pass = lag.p99 <= 20 && lag.max <= 100 && misses === 0 && duplicates === 0;
    await pool.end();
    await db.drop();
    say(
      JSON.stringify({
        bench: 'trigger',
        schedules: opts.schedules,
        seconds: opts.seconds,
        expected,
        runs: r.runs,
        misses,
        duplicates,
        lagMs: lag,
        insertLagMs: insertLag,
        fireStatements: firer.stats.fireStatements,
        masterCpuPercent: cpuPercent,
        targets: { lagP99Ms: 20, lagMaxMs: 100, misses: 0, duplicates: 0 },
        pass,
      }),
    );
  } finally {
    await pg.stop();
  }
}
