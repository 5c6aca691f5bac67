// @sched/testkit: real servers and real faults for sched's tests. See docs/testing.md.
export { registerCleanup, runCleanups } from './cleanup.js';
export { HarnessError, type HarnessErrorCode } from './errors.js';
export { EventQueue } from './event-queue.js';
export { type EventuallyOptions, eventually } from './eventually.js';
export { type FaultMode, FaultProxy, type RequestMatcher } from './fault-proxy.js';
export { freePort } from './ports.js';
export {
  type CreateDatabaseOptions,
  type CreatedDatabase,
  createDatabase,
  createTemplateDatabase,
  type PgServer,
  type StartPostgresOptions,
  startPostgres,
} from './postgres.js';
export {
  type ChildExit,
  type ChildHandle,
  processExists,
  type SpawnOptions,
  spawnProcess,
  waitUntilStopped,
} from './processes.js';
export { SeededRandom } from './seeded-random.js';
export {
  describeServer,
  sharedPgEnv,
  sharedPostgres,
  sharedZkEnv,
  sharedZooKeeper,
} from './shared-servers.js';
export { pruneOldServerDirs, testkitRoot } from './temp-dirs.js';
export { makeTiming, sleep, type Timing, timing } from './timing.js';
export { ZkOp, zkRequestMatcher, zkRequestOps } from './zk-wire.js';
export {
  fourLetterWord,
  type StartEnsembleOptions,
  type StartZooKeeperOptions,
  startZooKeeper,
  startZooKeeperEnsemble,
  type ZkEnsemble,
  type ZkServer,
  zkChroot,
} from './zookeeper.js';
