// One ZooKeeper and one PostgreSQL for the whole vitest run. `test/global-setup.ts` starts
// them before any test file and publishes them to the test workers through environment
// variables (workers are forked after global setup, so they inherit them); files isolate
// themselves with `zkChroot()` and `createDatabase()`. When the global setup did not run
// (another config, a script), the first call starts a private server for this process
// instead, stopped when the file ends.
//
// Shared servers must not be stopped or killed by a test: their handles throw on
// stop()/kill()/restart(). Fault tests start their own servers.

import { HarnessError } from './errors.js';
import { type PgServer, startPostgres } from './postgres.js';
import { fourLetterWord, startZooKeeper, type ZkServer } from './zookeeper.js';

export const sharedZkEnv = 'SCHED_TEST_SHARED_ZK';
export const sharedPgEnv = 'SCHED_TEST_SHARED_PG';

export interface SharedServerDescription {
  port: number;
  pid: number;
  dataDir: string;
  logFile: string;
}

/** What the global setup writes into the environment for one server. */
export function describeServer(server: {
  port: number;
  pid: number;
  dataDir: string;
  logFile: string;
}): string {
  const description: SharedServerDescription = {
    port: server.port,
    pid: server.pid,
    dataDir: server.dataDir,
    logFile: server.logFile,
  };
  return JSON.stringify(description);
}

function readDescription(envName: string): SharedServerDescription | undefined {
  const raw = process.env[envName];
  if (!raw) return undefined;
  try {
    const parsed = JSON.parse(raw) as SharedServerDescription;
    if (typeof parsed.port === 'number' && typeof parsed.pid === 'number') return parsed;
  } catch {
    // fall through
  }
  throw new HarnessError(
    'TESTKIT_SHARED_SERVER',
    `${envName} must be the JSON description written by test/global-setup.ts, got '${raw}'`,
  );
}

function refuse(what: string): () => Promise<void> {
  return () =>
    Promise.reject(
      new HarnessError(
        'TESTKIT_SHARED_SERVER',
        `the shared ${what} must not be stopped, killed or restarted by a test; start a private one`,
      ),
    );
}

let zkPromise: Promise<ZkServer> | undefined;
let pgPromise: Promise<PgServer> | undefined;

/** The run-wide ZooKeeper (do not stop it; isolate with `zkChroot`). */
export function sharedZooKeeper(): Promise<ZkServer> {
  zkPromise ??= (async () => {
    const shared = readDescription(sharedZkEnv);
    if (!shared) return startZooKeeper();
    const server: ZkServer = {
      host: '127.0.0.1',
      port: shared.port,
      connectString: `127.0.0.1:${shared.port}`,
      pid: shared.pid,
      dataDir: shared.dataDir,
      logFile: shared.logFile,
      running: true,
      stop: refuse('ZooKeeper'),
      kill: refuse('ZooKeeper'),
      restart: refuse('ZooKeeper'),
      pause: () => {
        throw new HarnessError(
          'TESTKIT_SHARED_SERVER',
          'the shared ZooKeeper must not be paused; start a private one',
        );
      },
      resume: () => undefined,
      fourLetterWord: (word: string) => fourLetterWord('127.0.0.1', shared.port, word),
    };
    return server;
  })();
  // A failed start is not cached: the next caller tries again.
  zkPromise.catch(() => {
    zkPromise = undefined;
  });
  return zkPromise;
}

/** The run-wide PostgreSQL (do not stop it; isolate with `createDatabase`). */
export function sharedPostgres(): Promise<PgServer> {
  pgPromise ??= (async () => {
    const shared = readDescription(sharedPgEnv);
    if (!shared) return startPostgres();
    const server: PgServer = {
      host: '127.0.0.1',
      port: shared.port,
      user: 'postgres',
      pid: shared.pid,
      dataDir: shared.dataDir,
      logFile: shared.logFile,
      url: (db = 'postgres') => `postgres://postgres@127.0.0.1:${shared.port}/${encodeURIComponent(db)}`,
      stop: refuse('PostgreSQL'),
      kill: refuse('PostgreSQL'),
      restart: refuse('PostgreSQL'),
    };
    return server;
  })();
  pgPromise.catch(() => {
    pgPromise = undefined;
  });
  return pgPromise;
}
