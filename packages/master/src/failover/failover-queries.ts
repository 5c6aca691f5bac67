import { FencedWriteError } from '@sched/core';
import type { Db, LeaderEpoch } from '@sched/store';

/**
 * The failover coordinator's statements (docs/design.md#failover). Everything runs inside one
 * transaction opened by the caller, after `lockLeaderEpoch`: the epoch row is share-locked, so
 * a newer leader cannot advance the epoch until this transaction ends, and a deposed leader's
 * transaction finds the epoch moved on and writes nothing.
 */

export interface FailedIncarnation {
  key: string;
  role: 'master' | 'worker';
  address: string;
  startTime: number;
  pid: number | null;
  sessionId: string | null;
}

export interface FailoverRow extends FailedIncarnation {
  leaderKey: string;
  tasks: number;
  runs: number;
  failedOverAt: Date;
  recordedAt: Date | null;
}

/**
 * Throws FencedWriteError unless `epoch` (czxid and ZooKeeper id) is still the current leader
 * epoch, and keeps it so until commit.
 */
export async function lockLeaderEpoch(db: Db, epoch: LeaderEpoch): Promise<void> {
  const { rowCount } = await db.query(
    `SELECT 1 FROM cluster_state WHERE leader_epoch = $1 AND zk_cluster_id = $2 FOR SHARE`,
    [epoch.czxid, epoch.clusterId],
  );
  if ((rowCount ?? 0) !== 1) {
    throw new FencedWriteError(
      `leader epoch ${epoch.czxid} of ZooKeeper ${epoch.clusterId} is no longer current; this leader was deposed`,
    );
  }
}

/** Claims the failover of an incarnation; false when it was already failed over (idempotent). */
export async function insertFailover(
  db: Db,
  i: FailedIncarnation,
  epoch: LeaderEpoch,
  leaderKey: string,
): Promise<boolean> {
  const { rowCount } = await db.query(
    `INSERT INTO failovers (key, role, address, start_time, pid, session_id, leader_epoch, leader_key)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (key) DO NOTHING`,
    [i.key, i.role, i.address, i.startTime, i.pid, i.sessionId, epoch.czxid, leaderKey],
  );
  return (rowCount ?? 0) === 1;
}

/**
 * The newest worker registration (czxid) that active attempts of `workerKey` were dispatched to;
 * null when none records one. Read before the re-registration check, it names registrations that
 * existed before that check: if the check then finds no znode, every one of them is gone.
 */
export async function newestAttemptRegistration(db: Db, workerKey: string): Promise<bigint | null> {
  const { rows } = await db.query<{ czxid: string | null }>(
    `SELECT max(worker_czxid)::text AS czxid FROM task_attempts
      WHERE worker_key = $1 AND state IN ('dispatched', 'running')`,
    [workerKey],
  );
  const czxid = rows[0]?.czxid ?? null;
  return czxid === null ? null : BigInt(czxid);
}

/**
 * Worker: its dispatched/running attempts become failed-over — those of registrations up to
 * `upToCzxid` (the newest one known to be gone) and those that record none. An attempt
 * dispatched to a newer registration of the same key (the worker came back with a new session
 * after the re-registration check) is left alone: that registration is alive, or its removal is
 * failed over in turn. Returns (run id, owner) of each attempt taken over.
 */
export async function failOverWorkerAttempts(
  db: Db,
  workerKey: string,
  upToCzxid: bigint,
): Promise<{ attemptId: number; runId: number; owner: string | null }[]> {
  const { rows } = await db.query<{ id: number; run_id: number; owner: string | null }>(
    `WITH u AS (
       UPDATE task_attempts SET state = 'failed-over', ended_at = clock_timestamp(),
              error = 'worker ' || $1 || ' was lost (its ZooKeeper session ended); failed over'
        WHERE worker_key = $1 AND state IN ('dispatched', 'running')
          AND (worker_czxid IS NULL OR worker_czxid <= $2::bigint)
       RETURNING id, run_id
     )
     SELECT u.id, u.run_id, r.owner FROM u JOIN runs r ON r.id = u.run_id`,
    [workerKey, upToCzxid.toString()],
  );
  return rows.map((r) => ({ attemptId: r.id, runId: r.run_id, owner: r.owner }));
}

/** Active attempts of `workerKey` dispatched to a registration newer than `thanCzxid` (left to it). */
export async function countAttemptsOfNewerRegistration(
  db: Db,
  workerKey: string,
  thanCzxid: bigint,
): Promise<number> {
  const { rows } = await db.query<{ n: number }>(
    `SELECT count(*)::int AS n FROM task_attempts
      WHERE worker_key = $1 AND state IN ('dispatched', 'running') AND worker_czxid > $2::bigint`,
    [workerKey, thanCzxid.toString()],
  );
  return rows[0]?.n ?? 0;
}

/** Master: its active runs are re-assigned, spread over `to` (compare-and-set on owner). */
export async function reassignRunsOf(
  db: Db,
  masterKey: string,
  to: readonly string[],
): Promise<{ runId: number; owner: string }[]> {
  if (to.length === 0) return [];
  const { rows } = await db.query<{ id: number; owner: string }>(
    `WITH locked AS (
       SELECT id FROM runs WHERE owner = $1 AND state IN ('pending', 'running') FOR UPDATE
     ), mine AS (
       SELECT id, row_number() OVER (ORDER BY id) - 1 AS n FROM locked
     )
     UPDATE runs r SET owner = ($2::text[])[(mine.n % array_length($2::text[], 1)) + 1]
       FROM mine WHERE r.id = mine.id AND r.owner = $1
     RETURNING r.id, r.owner`,
    [masterKey, to],
  );
  return rows.map((r) => ({ runId: r.id, owner: r.owner }));
}

export async function setFailoverCounts(db: Db, key: string, tasks: number, runs: number): Promise<void> {
  await db.query(`UPDATE failovers SET tasks = $2, runs = $3 WHERE key = $1`, [key, tasks, runs]);
}

export async function markRecorded(db: Db, key: string): Promise<void> {
  await db.query(
    `UPDATE failovers SET recorded_at = clock_timestamp() WHERE key = $1 AND recorded_at IS NULL`,
    [key],
  );
}

export async function getFailover(db: Db, key: string): Promise<FailoverRow | null> {
  const { rows } = await db.query(`SELECT * FROM failovers WHERE key = $1`, [key]);
  return rows[0] ? toRow(rows[0]) : null;
}

/**
 * Marks every failover unrecorded: their FAILOVER_FINISH_NODES records were in ZooKeeper data
 * that is gone (a reset ZooKeeper taken over, leader-epoch.ts), so the sweep writes them again
 * and a failed-over incarnation that comes back still finds its record. Returns how many.
 */
export async function forgetFailoverRecords(db: Db): Promise<number> {
  const { rowCount } = await db.query(
    `UPDATE failovers SET recorded_at = NULL WHERE recorded_at IS NOT NULL`,
  );
  return rowCount ?? 0;
}

/** Failovers whose FAILOVER_FINISH_NODES record was never written (the leader died in between). */
export async function listUnrecordedFailovers(db: Db): Promise<FailoverRow[]> {
  const { rows } = await db.query(
    `SELECT * FROM failovers WHERE recorded_at IS NULL ORDER BY failed_over_at`,
  );
  return rows.map(toRow);
}

/** Every incarnation that active work still points at: owners of active runs, workers of active attempts. */
export async function listReferencedIncarnations(
  db: Db,
): Promise<{ key: string; role: 'master' | 'worker' }[]> {
  const { rows } = await db.query<{ key: string; role: 'master' | 'worker' }>(
    `SELECT DISTINCT owner AS key, 'master' AS role FROM runs
      WHERE state IN ('pending', 'running') AND owner IS NOT NULL
     UNION
     SELECT DISTINCT worker_key, 'worker' FROM task_attempts
      WHERE state IN ('dispatched', 'running') AND worker_key IS NOT NULL`,
  );
  return rows;
}

export async function purgeFailovers(db: Db, olderThanMs: number): Promise<number> {
  const { rowCount } = await db.query(
    `DELETE FROM failovers WHERE recorded_at IS NOT NULL AND failed_over_at < clock_timestamp() - make_interval(secs => $1 / 1000.0)`,
    [olderThanMs],
  );
  return rowCount ?? 0;
}

// biome-ignore lint/suspicious/noExplicitAny: row shape is the table's
function toRow(r: any): FailoverRow {
  return {
    key: r.key,
    role: r.role,
    address: r.address,
    startTime: r.start_time,
    pid: r.pid,
    sessionId: r.session_id,
    leaderKey: r.leader_key,
    tasks: r.tasks,
    runs: r.runs,
    failedOverAt: r.failed_over_at,
    recordedAt: r.recorded_at,
  };
}
