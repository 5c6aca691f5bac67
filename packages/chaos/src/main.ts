// `npm run chaos [-- --duration 10m] [--seed N] [--ensemble] [--pg-faults] [--concurrency N]`
//
// The chaos suite as a plain program: starts its own ZooKeeper (one
// server, or with --ensemble a 3-server quorum whose members the nemesis kills and restarts)
// and PostgreSQL, runs runChaos() (chaos-run.ts), prints the summary and ends with
// `N passed, N failed`; the exit code is 1 when any check failed. See docs/chaos.md.
import { parseDuration } from '@sched/core';
import { runCleanups, startPostgres, startZooKeeper, startZooKeeperEnsemble } from '@sched/testkit';
import { runChaos } from './chaos-run.js';
import { formatSummary } from './summary.js';

interface MainOptions {
  durationMs: number;
  seed: number;
  ensemble: boolean;
  concurrency: number;
  escapeTasks: boolean;
  pgFaults: boolean;
}

const usage =
  "usage: npm run chaos -- [--duration 3m] [--seed N] [--ensemble] [--pg-faults (PostgreSQL restarts, black holes and cuts of a master's database link)] [--concurrency N (faults at a time, default 2)] [--escape-tasks (negative control: tasks escape their process group; overlaps must be reported)]";

function parseArgs(args: string[]): MainOptions {
  const opts: MainOptions = {
    durationMs: 3 * 60_000,
    seed: Math.floor(Math.random() * 2 ** 31),
    ensemble: false,
    concurrency: 2,
    escapeTasks: false,
    pgFaults: false,
  };
  for (let i = 0; i < args.length; i++) {
    const flag = args[i];
    if (flag === '--ensemble') {
      opts.ensemble = true;
      continue;
    }
    if (flag === '--pg-faults') {
      opts.pgFaults = true;
      continue;
    }
    if (flag === '--escape-tasks') {
      opts.escapeTasks = true;
      continue;
    }
    if (flag === '--help' || flag === '-h') {
      process.stdout.write(`${usage}\n`);
      process.exit(0);
    }
    const value = args[++i];
    if (value === undefined) throw new Error(`chaos: ${flag} needs a value; ${usage}`);
    if (flag === '--duration') opts.durationMs = parseDuration(value, '--duration');
    else if (flag === '--seed') {
      if (!/^\d+$/.test(value)) throw new Error(`chaos: --seed must be a non-negative integer, got ${value}`);
      opts.seed = Number(value);
    } else if (flag === '--concurrency') {
      const n = Number(value);
      if (!Number.isInteger(n) || n < 1 || n > 4)
        throw new Error(`chaos: --concurrency must be an integer from 1 to 4, got ${value}`);
      opts.concurrency = n;
    } else throw new Error(`chaos: unknown option ${flag}; ${usage}`);
  }
  return opts;
}

async function main(): Promise<number> {
  const opts = parseArgs(process.argv.slice(2));
  const log = (line: string): void => {
    process.stderr.write(`[chaos ${new Date().toISOString().slice(11, 23)}] ${line}\n`);
  };
  log(`starting ${opts.ensemble ? 'a 3-server ZooKeeper ensemble' : 'ZooKeeper'} and PostgreSQL`);
  const [zk, pg] = await Promise.all([
    opts.ensemble
      ? startZooKeeperEnsemble({ size: 3 })
      : startZooKeeper().then((s) => ({ servers: [s], connectString: s.connectString })),
    startPostgres({ durableCommits: opts.pgFaults }),
  ]);
  const report = await runChaos({
    durationMs: opts.durationMs,
    seed: opts.seed,
    zkConnect: zk.connectString,
    pgServer: pg,
    maxConcurrentFaults: opts.concurrency,
    escapeTasks: opts.escapeTasks,
    pgFaults: opts.pgFaults,
    zkDescription: opts.ensemble
      ? '3-server ZooKeeper ensemble (servers killed -9 and restarted)'
      : 'one ZooKeeper server',
    ...(opts.ensemble ? { zkServers: zk.servers } : {}),
    log,
  });
  process.stdout.write(`${formatSummary(report)}\n`);
  return report.checks.every((c) => c.passed) ? 0 : 1;
}

let code = 1;
try {
  code = await main();
} catch (error) {
  process.stderr.write(`chaos: ${(error as Error).stack ?? String(error)}\n`);
  process.stdout.write('0 passed, 1 failed\n');
}
await runCleanups().catch((error: unknown) => {
  process.stderr.write(`chaos: cleanup: ${(error as Error).message}\n`);
});
process.exit(code);
