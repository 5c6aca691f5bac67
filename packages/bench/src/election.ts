// `npm run bench -- election [--graceful-rounds N] [--kill-rounds N] [--timeouts 4s,10s]`
//
// Time to a new leader: after the leader closes gracefully (it
// deletes its candidate node; the successor's predecessor watch fires), and after kill -9 of
// the leader's process (nothing is deleted until ZooKeeper expires the dead session, so the
// floor is the session timeout). Each candidate is a separate Node.js process running
// `LeaderElection` from @sched/registry against a private ZooKeeper; this same file is the
// candidate program (`node election.js --candidate …`).
//
// Targets: graceful ≤ 300 ms; kill -9 ≤ sessionTimeout + 500 ms. Prints figures as it goes and
// ends with one JSON line.
import { performance } from 'node:perf_hooks';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { formatDuration, parseDuration } from '@sched/core';
import { LeaderElection, RegistryPaths, ZkSession } from '@sched/registry';
import { type ChildHandle, spawnProcess, startZooKeeper, zkChroot } from '@sched/testkit';

const self = fileURLToPath(import.meta.url);
/** Epoch ms with sub-ms precision, comparable across processes on one machine. */
const epochNow = (): number => performance.timeOrigin + performance.now();

interface Options {
  gracefulRounds: number;
  killRounds: number;
  timeoutsMs: number[];
}

function parseArgs(args: string[]): Options {
  const opts: Options = { gracefulRounds: 5, killRounds: 3, timeoutsMs: [4000, 10_000] };
  for (let i = 0; i < args.length; i++) {
    const flag = args[i];
    const value = args[i + 1];
    if (value === undefined) throw new Error(`bench election: ${flag} needs a value`);
    if (flag === '--graceful-rounds') opts.gracefulRounds = positiveInt(flag, value);
    else if (flag === '--kill-rounds') opts.killRounds = positiveInt(flag, value);
    else if (flag === '--timeouts') opts.timeoutsMs = value.split(',').map((v) => parseDuration(v, flag));
    else
      throw new Error(
        `bench election: unknown option ${flag}; accepted: --graceful-rounds N, --kill-rounds N, --timeouts 4s,10s`,
      );
    i++;
  }
  return opts;
}

function positiveInt(flag: string, value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1)
    throw new Error(`bench election: ${flag} must be a positive integer, got ${value}`);
  return n;
}

interface Candidate {
  name: string;
  child: ChildHandle;
}

function electedAt(c: Candidate): number | undefined {
  const m = /^elected (\d+(?:\.\d+)?)$/m.exec(c.child.output());
  return m ? Number(m[1]) : undefined;
}

async function waitElected(
  candidates: Candidate[],
  limitMs: number,
): Promise<{ who: Candidate; at: number }> {
  const deadline = performance.now() + limitMs;
  for (;;) {
    for (const c of candidates) {
      const at = electedAt(c);
      if (at !== undefined) return { who: c, at };
    }
    if (performance.now() > deadline) throw new Error(`no leader elected within ${limitMs} ms`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

let counter = 0;
function spawnCandidate(connect: string, sessionTimeoutMs: number): Candidate {
  const name = `c${++counter}`;
  const child = spawnProcess(
    process.execPath,
    [
      self,
      '--candidate',
      '--connect',
      connect,
      '--session-timeout',
      String(sessionTimeoutMs),
      '--name',
      name,
    ],
    { name, group: false },
  );
  return { name, child };
}

async function ensureCandidates(pool: Candidate[], connect: string, T: number, n: number): Promise<void> {
  while (pool.length < n) {
    const c = spawnCandidate(connect, T);
    pool.push(c);
    await c.child.waitForOutput(/^candidate /m, 30_000);
  }
}

function stats(samples: number[]): { min: number; median: number; max: number; samples: number[] } {
  const sorted = [...samples].sort((a, b) => a - b);
  const round = (x: number) => Math.round(x * 10) / 10;
  return {
    min: round(sorted[0] ?? Number.NaN),
    median: round(
      sorted.length % 2 === 1
        ? (sorted[(sorted.length - 1) / 2] ?? Number.NaN)
        : ((sorted[sorted.length / 2 - 1] ?? Number.NaN) + (sorted[sorted.length / 2] ?? Number.NaN)) / 2,
    ),
    max: round(sorted[sorted.length - 1] ?? Number.NaN),
    samples: samples.map(round),
  };
}

export async function run(args: string[]): Promise<void> {
  const opts = parseArgs(args);
  const zk = await startZooKeeper({ tickTime: 200 });
  const results: Record<string, unknown>[] = [];
  let ok = true;
  try {
    for (const T of opts.timeoutsMs) {
      const connect = await zkChroot(zk, `bench-election-${T}`);
      const pool: Candidate[] = [];
      await ensureCandidates(pool, connect, T, 3);
      let leader = await waitElected(pool, 30_000);

      const graceful: number[] = [];
      for (let round = 0; round < opts.gracefulRounds; round++) {
        await ensureCandidates(pool, connect, T, 3);
        const old = leader.who;
        old.child.signal('SIGTERM');
        const resign = await old.child.waitForOutput(/^resign (\d+(?:\.\d+)?)$/m, 10_000);
        const resignAt = Number(/resign (\S+)/.exec(resign)?.[1]);
        pool.splice(pool.indexOf(old), 1);
        leader = await waitElected(pool, 30_000);
        graceful.push(leader.at - resignAt);
        process.stdout.write(
          `T=${formatDuration(T)} graceful #${round + 1}: ${(leader.at - resignAt).toFixed(1)} ms\n`,
        );
        await old.child.exited;
      }

      const killed: number[] = [];
      for (let round = 0; round < opts.killRounds; round++) {
        await ensureCandidates(pool, connect, T, 3);
        // Let the leader's session settle into its steady ping rhythm before the kill.
        await new Promise((r) => setTimeout(r, 500));
        const old = leader.who;
        const killAt = epochNow();
        await old.child.kill9();
        pool.splice(pool.indexOf(old), 1);
        leader = await waitElected(pool, T * 3 + 30_000);
        killed.push(leader.at - killAt);
        process.stdout.write(
          `T=${formatDuration(T)} kill -9 #${round + 1}: ${(leader.at - killAt).toFixed(1)} ms\n`,
        );
      }
      for (const c of pool) await c.child.stop(5000);

      const g = stats(graceful);
      const k = stats(killed);
      const gracefulOk = g.max <= 300;
      const killOk = k.max <= T + 500;
      ok = ok && gracefulOk && killOk;
      process.stdout.write(
        `T=${formatDuration(T)}: graceful median ${g.median} ms, max ${g.max} ms (target ≤ 300 ms: ${gracefulOk ? 'met' : 'MISSED'}); ` +
          `kill -9 median ${k.median} ms, max ${k.max} ms (target ≤ ${T + 500} ms: ${killOk ? 'met' : 'MISSED'})\n`,
      );
      results.push({
        sessionTimeoutMs: T,
        gracefulMs: g,
        kill9Ms: k,
        gracefulTargetMet: gracefulOk,
        kill9TargetMet: killOk,
      });
    }
  } finally {
    await zk.stop();
  }
  process.stdout.write(`${JSON.stringify({ benchmark: 'election', targetsMet: ok, results })}\n`);
}

// ---- the candidate process ----------------------------------------------------------------

async function candidateMain(argv: string[]): Promise<void> {
  const arg = (name: string): string => {
    const i = argv.indexOf(name);
    const v = i >= 0 ? argv[i + 1] : undefined;
    if (v === undefined) throw new Error(`candidate: missing ${name}`);
    return v;
  };
  const name = arg('--name');
  const session = await ZkSession.connect({
    connectString: arg('--connect'),
    sessionTimeoutMs: Number(arg('--session-timeout')),
  });
  const election = new LeaderElection(session, new RegistryPaths('/sched'), { nodeKey: name });
  election.on('elected', () => process.stdout.write(`elected ${epochNow()}\n`));
  process.once('SIGTERM', () => {
    process.stdout.write(`resign ${epochNow()}\n`);
    void election
      .close()
      .then(() => session.close())
      .finally(() => process.exit(0));
  });
  election.start();
  await new Promise((r) => setTimeout(r, 0));
  process.stdout.write(`candidate ${name} ${session.sessionId}\n`);
}

if (
  process.argv[2] === '--candidate' &&
  process.argv[1] &&
  import.meta.url === pathToFileURL(process.argv[1]).href
) {
  await candidateMain(process.argv.slice(3));
}
