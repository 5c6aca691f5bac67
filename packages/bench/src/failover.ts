// `npm run bench -- failover [--worker-rounds N] [--leader-rounds N] [--session-timeout 10s]`
//
// Failover times with real daemons: masters and workers are child
// processes (the built sched-master / sched-worker) on a private ZooKeeper and PostgreSQL, with
// the session timeout at 10 s and the failover delay at its default.
//
//   worker: kill -9 of the worker running a long task → its task running again on another
//           worker: attempt 2's started_at (as its worker reported it) − the kill time; the
//           task also writes its own start time, printed as a cross-check.
//           Target ≤ session timeout + failover delay + 1 s.
//   leader: kill -9 of the leading master → a new leader: the first moment cluster_state.leader_key
//           names another master (the new leader writes it when it takes leadership, fenced by
//           its epoch) − the kill time. Target ≤ session timeout + 0.5 s.
//
// Prints each round as it goes and ends with one JSON line.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { TestCluster } from '@sched/chaos';
import { formatDuration, loadConfig, parseDuration } from '@sched/core';
import { runCleanups, startPostgres, startZooKeeper } from '@sched/testkit';

interface Options {
  workerRounds: number;
  leaderRounds: number;
  sessionTimeoutMs: number;
}

const usage =
  'usage: npm run bench -- failover [--worker-rounds N (default 3)] [--leader-rounds N (default 3)] [--session-timeout 10s]';

function parseArgs(args: string[]): Options {
  const opts: Options = { workerRounds: 3, leaderRounds: 3, sessionTimeoutMs: 10_000 };
  for (let i = 0; i < args.length; i++) {
    const flag = args[i];
    const value = args[i + 1];
    if (value === undefined) throw new Error(`bench failover: ${flag} needs a value; ${usage}`);
    if (flag === '--worker-rounds') opts.workerRounds = count(flag, value);
    else if (flag === '--leader-rounds') opts.leaderRounds = count(flag, value);
    else if (flag === '--session-timeout') opts.sessionTimeoutMs = parseDuration(value, flag);
    else throw new Error(`bench failover: unknown option ${flag}; ${usage}`);
    i++;
  }
  return opts;
}

function count(flag: string, value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0 || n > 20)
    throw new Error(`bench failover: ${flag} must be an integer from 0 to 20, got ${value}`);
  return n;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function until<T>(
  what: string,
  timeoutMs: number,
  intervalMs: number,
  probe: () => Promise<T | undefined>,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline)
      throw new Error(`bench failover: ${what} did not happen within ${formatDuration(timeoutMs)}`);
    await sleep(intervalMs);
  }
}

function stats(xs: number[]): { min: number; median: number; max: number } {
  const s = [...xs].sort((a, b) => a - b);
  const at = (i: number) => Math.round(s[i] ?? Number.NaN);
  return { min: at(0), median: at(Math.floor((s.length - 1) / 2)), max: at(s.length - 1) };
}

export async function run(args: string[]): Promise<void> {
  const opts = parseArgs(args);
  const T = opts.sessionTimeoutMs;
  // The default failover delay, from the configuration schema itself (not a copy of it).
  const failoverDelayMs = loadConfig({ env: {} }).failover.delayMs;
  const workerTargetMs = T + failoverDelayMs + 1000;
  const leaderTargetMs = T + 500;
  process.stdout.write(
    `failover bench: session timeout ${formatDuration(T)}, failover delay ${formatDuration(failoverDelayMs)} (default); ` +
      `${opts.workerRounds} worker rounds, ${opts.leaderRounds} leader rounds\n`,
  );
  const workerMs: number[] = [];
  const workerTaskMs: number[] = [];
  const leaderMs: number[] = [];
  try {
    const [zk, pg] = await Promise.all([startZooKeeper(), startPostgres()]);
    const cluster = await TestCluster.create({
      zkConnect: zk.connectString,
      pgServer: pg,
      env: {
        SCHED_ZK_SESSION_TIMEOUT: formatDuration(T),
        SCHED_FAILOVER_DELAY: formatDuration(failoverDelayMs),
      },
    });
    const marks = join(cluster.dataRoot, 'marks.log');
    const leaderKey = async (): Promise<string | null> =>
      (await cluster.query<{ leader_key: string | null }>('SELECT leader_key FROM cluster_state'))[0]
        ?.leader_key ?? null;

    let masters = [await cluster.startMaster()];
    await until('the first leader', 30_000, 100, async () =>
      (await leaderKey()) === masters[0]?.key ? true : undefined,
    );
    masters.push(await cluster.startMaster(), await cluster.startMaster());
    let workers = [await cluster.startWorker(), await cluster.startWorker()];
    await cluster.apply({
      name: 'bench-failover',
      tasks: [
        {
          name: 'long',
          type: 'shell',
          // Attempt 1 runs until killed; the re-run ends at once.
          command: `echo "$SCHED_RUN_ID $SCHED_ATTEMPT $(date +%s%3N)" >> ${marks}; if [ "$SCHED_ATTEMPT" = 1 ]; then sleep 120; fi`,
        },
      ],
    });

    for (let round = 1; round <= opts.workerRounds; round++) {
      const commandId = await cluster.trigger('bench-failover');
      const running = await until('attempt 1 running', 30_000, 50, async () => {
        const [row] = await cluster.query<{ run_id: string; worker_key: string }>(
          `SELECT a.run_id, a.worker_key FROM task_attempts a JOIN runs r ON r.id = a.run_id
            WHERE r.command_id = $1 AND a.attempt = 1 AND a.state = 'running'`,
          [commandId],
        );
        return row;
      });
      const victim = workers.find((w) => w.key === running.worker_key);
      if (!victim) throw new Error(`bench failover: attempt 1 runs on unknown worker ${running.worker_key}`);
      // Let the victim's session settle into its steady ping rhythm before the kill.
      await sleep(1000);
      const killedAt = Date.now();
      await victim.child.kill9();
      const startedAt = await until('attempt 2 started', T * 3 + 30_000, 50, async () => {
        const [row] = await cluster.query<{ started_ms: number | null }>(
          `SELECT (extract(epoch FROM started_at) * 1000)::float8 AS started_ms FROM task_attempts
            WHERE run_id = $1 AND attempt = 2 AND started_at IS NOT NULL`,
          [running.run_id],
        );
        return row?.started_ms ?? undefined;
      });
      const markLine = readFileSync(marks, 'utf8')
        .split('\n')
        .find((l) => l.startsWith(`${running.run_id} 2 `));
      const taskStartedAt = Number(markLine?.split(' ')[2] ?? Number.NaN);
      workerMs.push(startedAt - killedAt);
      workerTaskMs.push(taskStartedAt - killedAt);
      process.stdout.write(
        `worker round ${round}: kill -9 → attempt 2 started ${Math.round(startedAt - killedAt)} ms ` +
          `(task process wrote its start at +${Math.round(taskStartedAt - killedAt)} ms)\n`,
      );
      workers = workers.filter((w) => w !== victim);
      workers.push(await cluster.startWorker());
    }

    for (let round = 1; round <= opts.leaderRounds; round++) {
      const before = await leaderKey();
      const leader = masters.find((m) => m.key === before);
      if (!leader) throw new Error(`bench failover: the leader ${before} is not one of the bench's masters`);
      await sleep(1000);
      const killedAt = Date.now();
      await leader.child.kill9();
      const [changedAt, next] = await until('a new leader', T * 3 + 30_000, 20, async () => {
        const key = await leaderKey();
        return key !== null && key !== before ? ([Date.now(), key] as const) : undefined;
      });
      leaderMs.push(changedAt - killedAt);
      process.stdout.write(
        `leader round ${round}: kill -9 → new leader ${next} after ${changedAt - killedAt} ms\n`,
      );
      masters = masters.filter((m) => m !== leader);
      masters.push(await cluster.startMaster());
    }
    await cluster.stop();
  } finally {
    await runCleanups().catch(() => undefined);
  }

  const w = stats(workerMs);
  const l = stats(leaderMs);
  const workerOk = workerMs.length === 0 || w.max <= workerTargetMs;
  const leaderOk = leaderMs.length === 0 || l.max <= leaderTargetMs;
  process.stdout.write(
    `worker kill -9 → task running again: median ${w.median} ms, max ${w.max} ms (target ≤ ${workerTargetMs} ms: ${workerOk ? 'met' : 'MISSED'})\n` +
      `leader kill -9 → new leader: median ${l.median} ms, max ${l.max} ms (target ≤ ${leaderTargetMs} ms: ${leaderOk ? 'met' : 'MISSED'})\n`,
  );
  process.stdout.write(
    `${JSON.stringify({
      benchmark: 'failover',
      sessionTimeoutMs: T,
      failoverDelayMs,
      targetsMet: workerOk && leaderOk,
      workerRerun: {
        roundsMs: workerMs.map(Math.round),
        ...w,
        targetMs: workerTargetMs,
        targetMet: workerOk,
      },
      workerTaskProcessMs: workerTaskMs.map(Math.round),
      newLeader: { roundsMs: leaderMs, ...l, targetMs: leaderTargetMs, targetMet: leaderOk },
    })}\n`,
  );
}
