import type { Db } from '../db.js';

/**
 * Named queries on task attempts. States (docs/design.md#data-model):
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

// The attempt lifecycle (dispatch, reassignment, reports, failover) is written by the master's own
// fenced statements — packages/master/src/runs/run-drive-queries.ts, reports/, failover/ — which
// check the run's owner, the dispatch seq, the worker's registration and the leader epoch. Only
// the read side lives here.

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
