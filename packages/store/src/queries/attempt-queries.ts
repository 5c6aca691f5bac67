import type { Db } from '../db.js';

/**
 * Named queries on task attempts. States (architecture §10, plus `pending`):
 *
 *   pending ──dispatch──▶ dispatched ──report RUNNING──▶ running ──▶ succeeded | failed | timed-out | killed
 *      │ (not_before: retry backoff)   │                               │
 *      └───────────────────────────────┴──── worker lost (leader) ─────┴──▶ failed-over
 *
 * Reports from workers are applied with a fenced update: the attempt id, an allowed current
 * state and the worker incarnation key must all match, so a stale or misrouted report changes nothing.
 */

export type AttemptState =
  | 'pending'
  | 'dispatched'
  | 'running'
  | 'succeeded'
  | 'failed'
  | 'timed-out'
  | 'killed'
  | 'failed-over';
export const TERMINAL_ATTEMPT_STATES: readonly AttemptState[] = [
  'succeeded',
  'failed',
  'timed-out',
  'killed',
  'failed-over',
];

export interface AttemptRow {
  id: number;
  runId: number;
  taskName: string;
  attempt: number;
  shardIndex: number;
  shardTotal: number;
  state: AttemptState;
  workerAddress: string | null;
  workerStartTime: number | null;
  workerKey: string | null;
  notBefore: Date | null;
  createdAt: Date;
  dispatchedAt: Date | null;
  startedAt: Date | null;
  endedAt: Date | null;
  exitCode: number | null;
  logTail: string | null;
  error: string | null;
}

// biome-ignore lint/suspicious/noExplicitAny: row shape is the table's
function toAttempt(r: any): AttemptRow {
  return {
    id: r.id,
    runId: r.run_id,
    taskName: r.task_name,
    attempt: r.attempt,
    shardIndex: r.shard_index,
    shardTotal: r.shard_total,
    state: r.state,
    workerAddress: r.worker_address,
    workerStartTime: r.worker_start_time,
    workerKey: r.worker_key,
    notBefore: r.not_before,
    createdAt: r.created_at,
    dispatchedAt: r.dispatched_at,
    startedAt: r.started_at,
    endedAt: r.ended_at,
    exitCode: r.exit_code,
    logTail: r.log_tail,
    error: r.error,
  };
}

export interface NewAttempt {
  runId: number;
  taskName: string;
  attempt: number;
  shardIndex?: number;
  shardTotal?: number;
  notBeforeMs?: number | null;
}

/** Creates a pending attempt; null when that (run, task, shard, attempt) already exists (idempotent). */
export async function insertPendingAttempt(db: Db, a: NewAttempt): Promise<number | null> {
  const { rows } = await db.query<{ id: number }>(
    `INSERT INTO task_attempts (run_id, task_name, attempt, shard_index, shard_total, state, not_before)
     VALUES ($1, $2, $3, $4, $5, 'pending', $6)
     ON CONFLICT (run_id, task_name, shard_index, attempt) DO NOTHING RETURNING id`,
    [
      a.runId,
      a.taskName,
      a.attempt,
      a.shardIndex ?? 0,
      a.shardTotal ?? 1,
      a.notBeforeMs == null ? null : new Date(a.notBeforeMs),
    ],
  );
  return rows[0]?.id ?? null;
}

/**
 * pending → dispatched with the chosen worker incarnation (the intent is persisted before sending)
 * and, when known, the czxid of the registration znode it was chosen from: the leader's failover
 * of that key leaves alone attempts of a newer registration (docs/failover.md).
 */
export async function markAttemptDispatched(
  db: Db,
  id: number,
  w: { workerAddress: string; workerStartTime: number; workerKey: string; workerCzxid?: bigint | null },
): Promise<boolean> {
  const { rowCount } = await db.query(
    `UPDATE task_attempts SET state = 'dispatched', worker_address = $2, worker_start_time = $3, worker_key = $4,
            worker_czxid = $5::bigint, dispatched_at = clock_timestamp()
      WHERE id = $1 AND state = 'pending'`,
    [
      id,
      w.workerAddress,
      w.workerStartTime,
      w.workerKey,
      w.workerCzxid == null ? null : String(w.workerCzxid),
    ],
  );
  return (rowCount ?? 0) === 1;
}

/** A worker's report, fenced on (id, allowed states, worker key). False = stale, duplicate or not this worker's. */
export async function applyAttemptReport(
  db: Db,
  r: {
    id: number;
    workerKey: string;
    state: Exclude<AttemptState, 'pending' | 'dispatched' | 'failed-over'>;
    exitCode?: number | null;
    logTail?: string | null;
    error?: string | null;
  },
): Promise<boolean> {
  const from = r.state === 'running' ? ['dispatched'] : ['dispatched', 'running'];
  const { rowCount } = await db.query(
    `UPDATE task_attempts SET state = $3,
            started_at = coalesce(started_at, clock_timestamp()),
            ended_at = CASE WHEN $3 = 'running' THEN NULL ELSE clock_timestamp() END,
            exit_code = coalesce($5, exit_code), log_tail = coalesce($6, log_tail), error = coalesce($7, error)
      WHERE id = $1 AND worker_key = $2 AND state = ANY($4::text[])`,
    [r.id, r.workerKey, r.state, from, r.exitCode ?? null, r.logTail ?? null, r.error ?? null],
  );
  return (rowCount ?? 0) === 1;
}

/** Every active attempt of a worker incarnation becomes failed-over (leader-only, epoch-fenced by the caller). */
export async function failOverAttemptsOfWorker(db: Db, workerKey: string): Promise<AttemptRow[]> {
  const { rows } = await db.query(
    `UPDATE task_attempts SET state = 'failed-over', ended_at = clock_timestamp(), error = 'worker lost: ' || $1
      WHERE worker_key = $1 AND state IN ('dispatched', 'running') RETURNING *`,
    [workerKey],
  );
  return rows.map(toAttempt);
}

export async function listAttemptsOfRun(db: Db, runId: number): Promise<AttemptRow[]> {
  const { rows } = await db.query(
    `SELECT * FROM task_attempts WHERE run_id = $1 ORDER BY task_name, shard_index, attempt`,
    [runId],
  );
  return rows.map(toAttempt);
}

export async function getAttempt(db: Db, id: number): Promise<AttemptRow | null> {
  const { rows } = await db.query(`SELECT * FROM task_attempts WHERE id = $1`, [id]);
  return rows[0] ? toAttempt(rows[0]) : null;
}
