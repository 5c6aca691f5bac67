// `npm run bench -- trigger [--schedules N] [--seconds S] [--warmup S]`
//
// Scheduled work at default settings: N workflows, each with an every-second cron
// (`* * * * * ?`) and one noop task, on one master and one worker started as users start them
// (sched-master / sched-worker processes, every setting at its default) on a private ZooKeeper
// and PostgreSQL. What is measured is what a user feels: when each task starts on the worker.
//
//   fire-to-start = the attempt's started_at (the worker's clock as it starts the task) − fire time
//   trigger lag   = the master's sched_trigger_lag_seconds (fire time → run row committed)
//   done in 5 s   = runs that succeeded within 5 s of their fire time
//   misses / duplicates over the S-second window
//
// Targets (2 cores, defaults): fire-to-start p99 ≤ 50 ms, ≥ 99 % of runs succeeded within 5 s,
// 0 missed, 0 duplicated. Prints figures as it goes and ends with one JSON line.
import {
  applyCronWorkflows,
  describeWindow,
  fireWindowFigures,
  parseIntFlags,
  say,
  sleep,
  startDefaultsCluster,
  waitForArmed,
} from './fire-to-start.js';
import { scrapeBuckets, windowQuantiles } from './master-scrape.js';

export async function run(args: string[]): Promise<void> {
  const opts = parseIntFlags('trigger', args, { schedules: 1000, seconds: 60, warmup: 10 });
  say(
    `trigger: ${opts.schedules} every-second schedules (one noop task each) for ${opts.seconds} s; 1 master + 1 worker, default settings`,
  );
  const env = await startDefaultsCluster({});
  try {
    const { cluster } = env;
    const master = await cluster.startMaster();
    await cluster.startWorker();
    const t0 = performance.now();
    await applyCronWorkflows(cluster, 'tick', opts.schedules, () => '* * * * * ?');
    await waitForArmed(cluster, 'tick', opts.schedules);
    say(`applied ${opts.schedules} workflows in ${Math.round(performance.now() - t0)} ms`);

    const windowStart = Math.ceil((Date.now() + opts.warmup * 1000) / 1000) * 1000;
    const windowEnd = windowStart + opts.seconds * 1000;
    const scrape = () =>
      Promise.all([
        scrapeBuckets(master.address, 'sched_trigger_lag_seconds'),
        scrapeBuckets(master.address, 'sched_fire_to_start_seconds'),
      ]);
    await sleep(Math.max(0, windowStart - 500 - Date.now()));
    const before = await scrape();
    while (Date.now() < windowEnd) {
      await sleep(Math.min(10_000, Math.max(0, windowEnd - Date.now())));
      const [row] = await cluster.query<{ pending: number; dispatched: number; succeeded: number }>(
        `SELECT count(*) FILTER (WHERE state = 'pending')::int AS pending,
                count(*) FILTER (WHERE state = 'dispatched')::int AS dispatched,
                count(*) FILTER (WHERE state = 'succeeded')::int AS succeeded FROM task_attempts`,
      );
      const s = Math.max(0, Math.round((Date.now() - windowStart) / 1000));
      say(
        `  ${Math.min(s, opts.seconds)}/${opts.seconds} s: attempts pending ${row?.pending}, dispatched ${row?.dispatched}, succeeded ${row?.succeeded}`,
      );
    }
    // Runs fired at the end of the window get their 5 s.
    await sleep(6_000);
    const after = await scrape();
    const lag = windowQuantiles(before[0], after[0]);
    const metric = windowQuantiles(before[1], after[1]);
    const f = await fireWindowFigures(cluster, 'tick', windowStart, windowEnd, opts.schedules * opts.seconds);
    say(describeWindow(f));
    say(
      `the master's own histograms over the window: trigger lag (fire time → run committed) p99 ≤ ${lag.p99LeMs} ms; sched_fire_to_start_seconds p50 ≤ ${metric.p50LeMs} ms, p99 ≤ ${metric.p99LeMs} ms (${metric.count} runs)`,
    );
    const met =
      f.fireToStartMs.p99 <= 50 && f.doneWithin5sPercent >= 99 && f.misses === 0 && f.duplicates === 0;
    say(`targets (p99 ≤ 50 ms, ≥ 99 % within 5 s, 0 missed, 0 duplicated): ${met ? 'met' : 'NOT met'}`);
    say(
      JSON.stringify({
        bench: 'trigger',
        settings: 'defaults',
        schedules: opts.schedules,
        seconds: opts.seconds,
        ...f,
        masterHistograms: { triggerLag: lag, fireToStart: metric },
        targets: { fireToStartP99Ms: 50, doneWithin5sPercent: 99 },
        met,
      }),
    );
  } finally {
    await env.stop();
  }
}
