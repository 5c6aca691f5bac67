// Vitest global setup: one ZooKeeper and one PostgreSQL for the whole run, shared by every
// test file (each isolates itself with zkChroot() / createDatabase()). They are published to
// the test workers through environment variables, which the forked workers inherit, and
// stopped when the run ends. See docs/testing.md.
import {
  describeServer,
  pruneOldServerDirs,
  runCleanups,
  sharedPgEnv,
  sharedZkEnv,
  startPostgres,
  startZooKeeper,
} from '../packages/testkit/src/index.js';

export default async function setup(): Promise<() => Promise<void>> {
  pruneOldServerDirs();
  const started = performance.now();
  const [zk, pg] = await Promise.all([startZooKeeper(), startPostgres()]);
  process.env[sharedZkEnv] = describeServer(zk);
  process.env[sharedPgEnv] = describeServer(pg);
  if (process.env.SCHED_TEST_VERBOSE === '1') {
    console.error(
      `[testkit] shared ZooKeeper ${zk.connectString} (log ${zk.logFile}), PostgreSQL ${pg.url()} (log ${pg.logFile}), ready in ${Math.round(performance.now() - started)} ms`,
    );
  }
  return async () => {
    delete process.env[sharedZkEnv];
    delete process.env[sharedPgEnv];
    await Promise.all([zk.stop(), pg.stop()]);
    // Anything else registered in this process (nothing today) goes too.
    await runCleanups();
  };
}
