// `npm run bench -- scale [--schedules N] [--load S] [--idle S]`
//
// Scale: N schedules (default 1,000,000; mostly sparse crons — daily, weekly, monthly, hourly —
// and 1 % every minute, at a second of their own, in a handful of time zones) served by ONE real
// master daemon (sched-master at default settings) with one worker, on a private ZooKeeper and
// PostgreSQL. The schedules are bulk-inserted with SQL (how they got there is not what is
// measured; their next fire times come from the same CronSchedule the master uses). Figures:
//   startUpMs    = spawn of sched-master until it says it is listening (migrations checked,
//                  registered, the firer started: it reads only the schedules due within its
//                  pre-read window, by index)
//   rssMb        = the master process's resident set size (/proc), after start-up and the maximum
//   fire-to-start = over the load window (S s): the 1 % every-minute schedules fire ~N/6000 runs a
//                  second; each run's task started on the worker − its fire time; CPU of the
//                  master meanwhile
//   idleCpu      = CPU of the master over the idle window, after the every-minute schedules are
//                  paused (only the sparse ones remain: what a master holding N schedules costs)
// Targets on a 2-core machine: start-up ≤ 10 s, RSS ≤ 300 MB, idle CPU ≤ 5 % of a core; the
// fire-to-start p99 is reported. Ends with one JSON line.
import { readFileSync } from 'node:fs';
import { CronSchedule, compileDefinitions } from '@sched/store';
import {
  describeWindow,
  fireWindowFigures,
  parseIntFlags,
  say,
  sleep,
  startDefaultsCluster,
} from './fire-to-start.js';

const mb = (bytes: number) => Math.round(bytes / 1024 / 1024);

/** Resident set size of a process, in bytes. */
function rssOf(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return Number(m?.[1] ?? 0) * 1024;
}

/** CPU time (user + system) of a process so far, in ms. */
function cpuMsOf(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  // utime and stime are fields 14 and 15 of /proc/PID/stat (11 and 12 after the command name).
  return ((Number(fields[11]) + Number(fields[12])) * 1000) / 100;
}

const ZONES = ['UTC', 'UTC', 'UTC', 'Europe/London', 'America/New_York', 'Asia/Shanghai'];

/** A deterministic mix: 1 % every minute, 9 % hourly, 60 % daily, 20 % weekly, 10 % monthly (Quartz and 5-field). */
function cronFor(i: number): string {
  const m = i % 60;
  const h = (i * 7) % 24;
  const bucket = i % 100;
  if (bucket === 0) return `${Math.floor(i / 100) % 60} * * * * ?`;
  if (bucket < 10) return `0 ${m} * * * ?`;
  if (bucket < 70) return `${m} ${h} * * *`;
  if (bucket < 90) return `0 ${m} ${h} ? * ${1 + (i % 7)}`;
  return `0 ${m} ${h} ${1 + (i % 28)} * ?`;
}

export async function run(args: string[]): Promise<void> {
  const opts = parseIntFlags('scale', args, { schedules: 1_000_000, load: 60, idle: 30 });
  say(
    `scale: ${opts.schedules} schedules (1 % every minute) on one master at default settings; load window ${opts.load} s, idle window ${opts.idle} s`,
  );
  const env = await startDefaultsCluster({});
  try {
    const { cluster } = env;
    const template = compileDefinitions([
      { value: { name: 'template', tasks: [{ name: 'only', type: 'noop' }] } },
    ])[0];
    const loadStart = performance.now();
    const chunk = 10_000;
    for (let base = 0; base < opts.schedules; base += chunk) {
      const n = Math.min(chunk, opts.schedules - base);
      const now = Date.now() + 5_000;
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
      await cluster.query(
        `WITH w AS (
           INSERT INTO workflows (name, current_version) SELECT 'scale-' || g, 1 FROM generate_series($1::int, $2::int) g RETURNING id, name
         ), v AS (
           INSERT INTO workflow_versions (workflow_id, version, definition, digest)
           SELECT id, 1, jsonb_set($6::jsonb, '{name}', to_jsonb(name)), md5(name) FROM w RETURNING workflow_id
         )
         INSERT INTO schedules (workflow_id, cron, timezone, misfire, misfire_threshold_ms, max_catch_up, concurrency, next_fire_time)
         SELECT w.id, s.cron, s.zone, 'fire-once-now', 5000, 100, 'allow', s.next
           FROM w JOIN unnest($3::text[], $4::text[], $5::timestamptz[]) WITH ORDINALITY AS s(cron, zone, next, ord)
             ON w.name = 'scale-' || ($1::int + s.ord - 1)`,
        [base, base + n - 1, crons, zones, next, JSON.stringify(template)],
      );
      if ((base / chunk) % 10 === 9) say(`  loaded ${base + n} schedules`);
    }
    // Loading takes a while: schedules whose next fire time has passed meanwhile get a fresh one,
    // so the master starts on a schedule table as an operator would have it (no misfires).
    const stale = await cluster.query<{ id: number; cron: string; timezone: string }>(
      `SELECT id, cron, timezone FROM schedules WHERE next_fire_time < now() + interval '10 seconds'`,
    );
    const fresh = Date.now() + 10_000;
    await cluster.query(
      `UPDATE schedules s SET next_fire_time = u.next FROM unnest($1::bigint[], $2::timestamptz[]) AS u(id, next) WHERE s.id = u.id`,
      [
        stale.map((r) => r.id),
        stale.map((r) => new Date(new CronSchedule(r.cron, { timezone: r.timezone }).next(fresh) as number)),
      ],
    );
    await cluster.query('ANALYZE');
    say(`loaded ${opts.schedules} schedules in ${Math.round(performance.now() - loadStart)} ms`);

    await cluster.startWorker();
    const t0 = performance.now();
    const master = await cluster.startMaster();
    const startUpMs = Math.round(performance.now() - t0);
    const pid = master.child.pid;
    const rssAfterStart = rssOf(pid);
    say(`master start-up ${startUpMs} ms, RSS ${mb(rssAfterStart)} MB`);
    let rssMax = rssAfterStart;

    // Load window: every-minute schedules fire all along.
    // Not before `fresh`: fire times before it were moved past it by the fix-up above.
    const loadFrom = Math.ceil(Math.max(Date.now() + 2_000, fresh + 1_000) / 1000) * 1000;
    const loadTo = loadFrom + opts.load * 1000;
    await sleep(loadFrom - Date.now());
    const cpuLoad0 = cpuMsOf(pid);
    while (Date.now() < loadTo) {
      await sleep(1000);
      rssMax = Math.max(rssMax, rssOf(pid));
    }
    const loadCpuPercent = Math.round(((cpuMsOf(pid) - cpuLoad0) / (opts.load * 1000)) * 1000) / 10;
    await sleep(5_000);
    // Every fire time of every schedule in the window, from the same crons (computed, not read).
    const want = new Map<string, number[]>();
    let expected = 0;
    for (let i = 0; i < opts.schedules; i++) {
      const cron = new CronSchedule(cronFor(i), { timezone: ZONES[i % ZONES.length] as string });
      for (let t = cron.next(loadFrom - 1); t !== null && t < loadTo; t = cron.next(t)) {
        expected += 1;
        want.set(`scale-${i}`, [...(want.get(`scale-${i}`) ?? []), t]);
      }
    }
    const got = new Set(
      (
        await cluster.query<{ name: string; fire: number }>(
          `SELECT w.name, (extract(epoch FROM r.fire_time) * 1000)::float8 AS fire FROM runs r
             JOIN workflows w ON w.id = r.workflow_id WHERE r.fire_time >= $1 AND r.fire_time < $2`,
          [new Date(loadFrom), new Date(loadTo)],
        )
      ).map((r) => `${r.name}@${r.fire}`),
    );
    const missing = [...want].flatMap(([name, times]) =>
      times.filter((t) => !got.has(`${name}@${t}`)).map((t) => ({ name, t })),
    );
    for (const m of missing.slice(0, 5)) {
      const [row] = await cluster.query<{ cron: string; timezone: string; next: Date; paused: boolean }>(
        `SELECT s.cron, s.timezone, s.next_fire_time AS next, s.paused FROM schedules s JOIN workflows w ON w.id = s.workflow_id WHERE w.name = $1`,
        [m.name],
      );
      say(
        `  missing: ${m.name} at ${new Date(m.t).toISOString()} (cron ${row?.cron}, ${row?.timezone}, next_fire_time now ${row?.next?.toISOString()})`,
      );
    }
    const fired = await fireWindowFigures(cluster, 'scale', loadFrom, loadTo, expected);
    say(describeWindow(fired));
    say(`master CPU while firing ${round1(expected / opts.load)} runs/s: ${loadCpuPercent} % of one core`);

    // Idle window: the every-minute schedules paused; the master still holds all N.
    await cluster.query(`UPDATE schedules SET paused = true WHERE cron LIKE '% * * * * ?'`);
    await sleep(6_000);
    const cpuIdle0 = cpuMsOf(pid);
    for (let s = 0; s < opts.idle; s++) {
      await sleep(1000);
      rssMax = Math.max(rssMax, rssOf(pid));
    }
    const idleCpuPercent = Math.round(((cpuMsOf(pid) - cpuIdle0) / (opts.idle * 1000)) * 1000) / 10;
    say(`idle: ${idleCpuPercent} % of one core over ${opts.idle} s; RSS max ${mb(rssMax)} MB`);
    const met = startUpMs <= 10_000 && mb(rssMax) <= 300 && idleCpuPercent <= 5;
    say(`targets (start-up ≤ 10 s, RSS ≤ 300 MB, idle CPU ≤ 5 %): ${met ? 'met' : 'NOT met'}`);
    say(
      JSON.stringify({
        bench: 'scale',
        settings: 'defaults',
        schedules: opts.schedules,
        startUpMs,
        rssMb: { afterStart: mb(rssAfterStart), max: mb(rssMax) },
        load: { seconds: opts.load, cpuPercent: loadCpuPercent, ...fired },
        idleCpuPercent,
        idleSeconds: opts.idle,
        targets: { startUpMs: 10_000, rssMb: 300, idleCpuPercent: 5 },
        met,
      }),
    );
  } finally {
    await env.stop();
  }
}

const round1 = (n: number) => Math.round(n * 10) / 10;
