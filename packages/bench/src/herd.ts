// `npm run bench -- herd [--schedules N] [--minutes M]`
//
// A herd: N workflows (default 10,000) whose cron is `0 * * * * ?` — all due at second 0 of every
// minute — each with one noop task, on one master and one worker at default settings (real
// sched-master / sched-worker processes, private ZooKeeper and PostgreSQL). For each of M
// consecutive minutes (default 2): runs created, dropped (missed) and doubled, and when the
// tasks started: fire-to-start p50/p99/max and the spread (latest start − fire time).
//
// Target (2 cores, defaults): every run created, every task started within 2 s of the fire
// time, 0 dropped, 0 doubled, every minute. Prints figures as it goes and ends with one JSON line.
import {
  applyCronWorkflows,
  describeWindow,
  type FireWindowFigures,
  fireWindowFigures,
  parseIntFlags,
  say,
  sleep,
  startDefaultsCluster,
  waitForArmed,
} from './fire-to-start.js';

export async function run(args: string[]): Promise<void> {
  const opts = parseIntFlags('herd', args, { schedules: 10_000, minutes: 2 });
  say(
    `herd: ${opts.schedules} schedules due at second 0 of every minute (one noop task each), ${opts.minutes} minutes; 1 master + 1 worker, default settings`,
  );
  const env = await startDefaultsCluster({});
  try {
    const { cluster } = env;
    await cluster.startMaster();
    await cluster.startWorker();
    const t0 = performance.now();
    await applyCronWorkflows(cluster, 'herd', opts.schedules, () => '0 * * * * ?');
    await waitForArmed(cluster, 'herd', opts.schedules);
    say(`applied ${opts.schedules} workflows in ${Math.round(performance.now() - t0)} ms`);
    // The first whole minute at least 10 s away (the master reads due schedules 5 s ahead).
    const first = Math.ceil((Date.now() + 10_000) / 60_000) * 60_000;
    const minutes: (FireWindowFigures & { fireTime: string })[] = [];
    for (let m = 0; m < opts.minutes; m++) {
      const fire = first + m * 60_000;
      say(`minute ${m + 1}: fire time ${new Date(fire).toISOString()}`);
      await sleep(Math.max(0, fire + 8_000 - Date.now()));
      const f = await fireWindowFigures(cluster, 'herd', fire, fire + 1, opts.schedules);
      say(describeWindow(f).replace(/^/gm, '  '));
      say(`  spread (latest start − fire time): ${f.spreadMs} ms`);
      minutes.push({ fireTime: new Date(fire).toISOString(), ...f });
    }
    const met = minutes.every(
      (f) => f.misses === 0 && f.duplicates === 0 && f.started === opts.schedules && f.spreadMs <= 2_000,
    );
    say(
      `target (all ${opts.schedules} started within 2 s, 0 dropped, 0 doubled, each minute): ${met ? 'met' : 'NOT met'}`,
    );
    say(
      JSON.stringify({
        bench: 'herd',
        settings: 'defaults',
        schedules: opts.schedules,
        minutes,
        targets: { spreadMs: 2000, dropped: 0 },
        met,
      }),
    );
  } finally {
    await env.stop();
  }
}
