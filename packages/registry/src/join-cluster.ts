import { type Clock, type Logger, SchedError } from '@sched/core';
import { type FailoverRecord, FailoverRecords, type WatchHandle } from './failover-records.js';
import type { Heartbeat } from './heartbeat.js';
import { ensureLayout } from './layout.js';
import { MemberRegistration, type Registration } from './member-registration.js';
import type { MemberRole, RegistryPaths } from './registry-paths.js';
import type { ZkSession } from './zk-session.js';

export interface JoinClusterOptions {
  role: MemberRole;
  /** This incarnation's key, `host:port_startTime` (docs/design.md#identity). */
  nodeKey: string;
  /** The heartbeat to publish now; called for every write of the registration znode. */
  heartbeat: () => Heartbeat;
  /** How often the heartbeat is rewritten (`heartbeat.interval`). */
  intervalMs: number;
  /**
   * Called when this incarnation learns it was failed over (its FAILOVER_FINISH_NODES record
   * exists): at most once, never after `stop()`. The caller fences for good and ends the
   * process (exit 3). Called synchronously, before the refused re-registration is logged.
   */
  onFailedOver: (record: FailoverRecord) => void;
  /** Called on every registration, the first one included (before `joinCluster` resolves). */
  onRegistered?: (registration: Registration) => void;
  logger?: Logger;
  clock?: Clock;
}

/** A joined incarnation: its registration, the failover records, and the way out. */
export interface ClusterMembership {
  /**
   * The registration: `refresh()` on a state change, `on('registered')`, the current
   * registration's `czxid` (`registration.registration?.czxid`), its `state` (`retrying` while
   * a failed re-registration waits for its next try) and `failures`.
   */
  readonly registration: MemberRegistration;
  /** The FAILOVER_FINISH_NODES records on the same session (a leader writes and purges them). */
  readonly records: FailoverRecords;
  /** The record this incarnation was failed over with, once it is known. */
  readonly failedOver: FailoverRecord | undefined;
  /**
   * Stops watching for the record and deregisters (deletes the registration znode: a graceful
   * stop, nothing is failed over). `onFailedOver` is not called after this.
   */
  stop(): Promise<void>;
}

/**
 * Joins the cluster as a master or worker incarnation and runs the zombie's half of the failover
 * protocol for it (docs/design.md#zombies, docs/failover.md):
 *
 * 1. Lays out the persistent tree (`ensureLayout`).
 * 2. Opens the FAILOVER_FINISH_NODES records on `session` (docs/design.md#failover-finish-nodes).
 * 3. Registers `{root}/{masters|workers}/{key}` with a {@link MemberRegistration}, whose
 *    `beforeRegister` runs before every registration but the first (a brand-new incarnation
 *    cannot have been failed over): on each new session after LOST, and when the znode was
 *    deleted under a live session. It lays the tree out again (a ZooKeeper whose data was reset
 *    lost it) and reads this incarnation's record; if present (or already
 *    known), it calls `onFailedOver(record)` and refuses the registration with a `FAILED_OVER`
 *    error (`{role} {key} was failed over; this incarnation must exit`, logged by the
 *    registration as `registration refused`; it is never retried). Absent, the incarnation
 *    registers again with the **same key**; a re-registration that fails otherwise (ZooKeeper
 *    refused or timed out, the record could not be read) is retried with backoff until it
 *    succeeds, the session is lost, or `stop()` (`registration.state` is `retrying` meanwhile).
 * 4. Once registered, watches the record path (re-armed across reconnects and new sessions):
 *    a record that appears later — the leader was failing this incarnation over while it
 *    re-registered — calls `onFailedOver(record)` too.
 * 5. `onFailedOver` is called at most once, whichever of 3 and 4 sees the record first, and
 *    never after `stop()`.
 *
 * Resolves once registered (the first `onRegistered` has run by then); rejects, deregistered,
 * if the first registration fails. Fencing on LOST (stop work, kill tasks) stays with the
 * caller: this only decides whether the incarnation may come back.
 */
export async function joinCluster(
  session: ZkSession,
  paths: RegistryPaths,
  opts: JoinClusterOptions,
): Promise<ClusterMembership> {
  const { role, nodeKey } = opts;
  // 1. The tree, then 2. the records.
  await ensureLayout(session, paths);
  const records = new FailoverRecords(session, paths, { clock: opts.clock, logger: opts.logger });

  let failedOver: FailoverRecord | undefined;
  let stopped = false;
  let watch: WatchHandle | undefined;
  /** Reports the record to the caller: once, and not after stop(). */
  const failOver = (record: FailoverRecord): void => {
    if (failedOver || stopped) return;
    failedOver = record;
    watch?.stop();
    try {
      opts.onFailedOver(record);
    } catch (err) {
      opts.logger?.error({ err }, 'the failed-over handler threw');
    }
  };

  // 3. Register; every re-registration first looks for this incarnation's record.
  const registration = new MemberRegistration(session, paths, {
    role,
    nodeKey,
    heartbeat: opts.heartbeat,
    intervalMs: opts.intervalMs,
    beforeRegister: async ({ first }) => {
      if (first) return; // a brand-new incarnation cannot have been failed over
      // The tree again: a ZooKeeper whose data was reset lost it (cheap when it is there).
      await ensureLayout(session, paths);
      const record = failedOver ?? (await records.read(role, nodeKey));
      if (record) {
        failOver(record);
        throw new SchedError('FAILED_OVER', `${role} ${nodeKey} was failed over; this incarnation must exit`);
      }
    },
    // Any other failure (ZooKeeper refused or timed out, the record could not be read) is
    // retried with backoff in the same session: an incarnation must not stay unregistered.
    isRefusal: (err) => err instanceof SchedError && err.code === 'FAILED_OVER',
    logger: opts.logger,
  });
  const { onRegistered } = opts;
  if (onRegistered) registration.on('registered', (reg) => onRegistered(reg));
  try {
    await registration.start();
  } catch (err) {
    await registration.stop().catch(() => {});
    throw err;
  }

  // 4. If the leader is failing this incarnation over right now, the record appears later.
  watch = records.watchFor(role, nodeKey, failOver);

  return {
    registration,
    records,
    get failedOver() {
      return failedOver;
    },
    async stop() {
      stopped = true;
      watch?.stop();
      await registration.stop();
    },
  };
}
