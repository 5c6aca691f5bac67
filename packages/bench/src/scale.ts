// `npm run bench -- scale [--schedules N] [--idle S]`
//
// Scale (issue 4, acceptance 6): N schedules (default 100,000; mostly sparse crons: daily,
// weekly, monthly, hourly, a few per-minute, in a handful of time zones) loaded by ONE master.
// Figures:
//   startUpMs  = migrate() (a no-op on the loaded schema) + ScheduleFirer.start() until its first scan
//                has armed everything due in the pre-read window. The master does not hold all N
//                schedules in memory: it reads those due within the window, by index.
//   rssMb      = resident set size of this process after start-up and after the idle period
//   idleCpu    = CPU of this process over the idle period while it keeps firing its schedules,
//                as a percentage of one core
// The schedules are bulk-inserted with SQL (how they got there is not what is measured); their
// next fire times are computed with the same CronSchedule the master uses.
// Targets on a 2-core machine: start-up ≤ 10 s, RSS ≤ 300 MB, idle CPU ≤ 5 %. Ends with one JSON line.
import { createLogger } from '@sched/core';
import { ScheduleFirer } from '@sched/master';
import { CronSchedule, createPool, migrate } from '@sched/store';
import { createDatabase, startPostgres } from '@sched/testkit';

const say = (line: string) => process.stdout.write(`${line}\n`);
const mb = (bytes: number) => Math.round(bytes / 1024 / 1024);

function parseArgs(args: string[]): { schedules: number; idleS: number } {
  const opts = { schedules: 100_000, idleS: 30 };
  for (let i = 0; i < args.length; i += 2) {
    const flag = args[i] as string;
    const n = Number(args[i + 1]);
    if (!Number.isInteger(n) || n < 1)
      throw new Error(`bench scale: ${flag} needs a positive integer, got ${args[i + 1]}`);
    if (flag === '--schedules') opts.schedules = n;
    else if (flag === '--idle') opts.idleS = n;
    else throw new Error(`bench scale: unknown option ${flag}; accepted: --schedules N, --idle S`);
  }
  return opts;
}

const ZONES = ['UTC', 'UTC', 'UTC', 'Europe/London', 'America/New_York', 'Asia/Shanghai'];

/** A deterministic mix: 1 % every minute, 9 % hourly, 60 % daily, 20 % weekly, 10 % monthly (Quartz and 5-field). */
function cronFor(i: number): string {
  const m = i % 60;
  const h = (i * 7) % 24;
  const bucket = i % 100;
  if (bucket === 0) return `${i % 60} * * * * ?`;
  if (bucket < 10) return `0 ${m} * * * ?`;
  if (bucket < 70) return `${m} ${h} * * *`;
  if (bucket < 90) return `0 ${m} ${h} ? * ${1 + (i % 7)}`;
  return `0 ${m} ${h} ${1 + (i % 28)} * ?`;
}

export async function run(args: string[]): Promise<void> {
  const opts = parseArgs(args);
  say(`scale: ${opts.schedules} schedules on one master, idle CPU over ${opts.idleS} s`);
  const pg = await startPostgres();
  try {
    const db = await createDatabase(pg, { prefix: 'bench_scale' });
    await migrate(db.url);
    const pool = createPool(db.url, { max: 4, applicationName: 'bench-scale' });

    const loadStart = performance.now();
    const now = Date.now();
    const chunk = 10_000;
    for (let base = 0; base < opts.schedules; base += chunk) {
      const n = Math.min(chunk, opts.schedules - base);
      const crons: string[] = [];
      const zones: string[] = [];
      const next: Date[] = [];
      for (let k = 0; k < n; k++) {
        const i = base + k;
        const cron = cronFor(i);
        const zone = ZONES[i % ZONES.length] as string;
        crons.push(cron);
        zones.push(zone);
        next.push(new Date(new CronSchedule(cron, { timezone: zone }).next(now) as number));
      }
      await pool.query(
        `WITH w AS (
           INSERT INTO workflows (name, current_version) SELECT 'scale-' || g, 1 FROM generate_series($1::int, $2::int) g RETURNING id, name
         ), v AS (
           INSERT INTO workflow_versions (workflow_id, version, definition, digest)
           SELECT id, 1, jsonb_build_object('name', name, 'tasks', jsonb_build_array(jsonb_build_object('name', 'only', 'type', 'noop'))), md5(name)
             FROM w RETURNING workflow_id
         )
         INSERT INTO schedules (workflow_id, cron, timezone, misfire, misfire_threshold_ms, max_catch_up, concurrency, next_fire_time)
         SELECT w.id, s.cron, s.zone, 'fire-once-now', 5000, 100, 'allow', s.next
           FROM w JOIN unnest($3::text[], $4::text[], $5::timestamptz[]) WITH ORDINALITY AS s(cron, zone, next, ord)
             ON w.name = 'scale-' || ($1::int + s.ord - 1)`,
        [base, base + n - 1, crons, zones, next],
      );
    }
    // Loading takes a while: schedules whose next fire time has passed meanwhile get a fresh one,
    // so the master starts on a schedule table as an operator would have it (no misfires).
    const stale = await pool.query<{ id: number; cron: string; timezone: string }>(
      `SELECT id, cron, timezone FROM schedules WHERE next_fire_time < now() + interval '5 seconds'`,
    );
    const fresh = Date.now() + 5000;
    await pool.query(
      `UPDATE schedules s SET next_fire_time = u.next FROM unnest($1::bigint[], $2::timestamptz[]) AS u(id, next) WHERE s.id = u.id`,
      [
        stale.rows.map((r) => r.id),
        stale.rows.map(
          (r) => new Date(new CronSchedule(r.cron, { timezone: r.timezone }).next(fresh) as number),
        ),
      ],
    );
    await pool.query('ANALYZE');
    say(`loaded ${opts.schedules} schedules in ${Math.round(performance.now() - loadStart)} ms`);

    let fired = 0;
    const firer = new ScheduleFirer({
      pool,
      self: '127.0.0.1:0_scale',
      liveMasters: () => ['127.0.0.1:0_scale'],
      leaseValid: () => true,
      logger: createLogger({ level: 'warn', name: 'bench' }),
      onRunsCreated: (runs) => {
        fired += runs.length;
      },
    });
    const rss0 = process.memoryUsage().rss;
    const t0 = performance.now();
    // What a master does at start: migrate (nothing to do here, but it takes the lock and checks), then fire.
    await migrate(db.url);
    firer.start();
    while (firer.stats.scans === 0) await new Promise((r) => setTimeout(r, 5));
    const startUpMs = Math.round(performance.now() - t0);
    const armedAtStart = firer.armedCount;
    const rssAfterStart = process.memoryUsage().rss;
    say(
      `start-up ${startUpMs} ms, ${firer.armedCount} schedules armed in the window, RSS ${mb(rssAfterStart)} MB`,
    );

    const cpu0 = process.cpuUsage();
    const idle0 = performance.now();
    let rssMax = rssAfterStart;
    while (performance.now() - idle0 < opts.idleS * 1000) {
      await new Promise((r) => setTimeout(r, 1000));
      rssMax = Math.max(rssMax, process.memoryUsage().rss);
    }
    const cpu = process.cpuUsage(cpu0);
    const idleCpuPercent =
      Math.round(((cpu.user + cpu.system) / 1000 / (performance.now() - idle0)) * 1000) / 10;
    await firer.stop();
    say(
      `idle: ${idleCpuPercent} % of one core over ${opts.idleS} s, ${fired} runs fired meanwhile, RSS max ${mb(rssMax)} MB`,
    );
    const pass = startUpMs <= 10_000 && mb(rssMax) <= 300 && idleCpuPercent <= 5;
    await pool.end();
    await db.drop();
    say(
      JSON.stringify({
        bench: 'scale',
        schedules: opts.schedules,
        startUpMs,
        armedAtStart,
        rssMb: { beforeStart: mb(rss0), afterStart: mb(rssAfterStart), max: mb(rssMax) },
        idleCpuPercent,
        idleSeconds: opts.idleS,
        runsFiredWhileIdle: fired,
        scans: firer.stats.scans,
        targets: { startUpMs: 10_000, rssMb: 300, idleCpuPercent: 5 },
        pass,
      }),
    );
  } finally {
    await pg.stop();
  }
}
