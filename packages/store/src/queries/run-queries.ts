import type { Db } from '../db.js';

/**
 * Named queries on runs; one SQL statement each. The owner's run-state writes, each conditional on
 * the owner, are the master's run driver's (`packages/master/src/runs/run-drive-queries.ts`).
 */

export type RunState = 'pending' | 'running' | 'succeeded' | 'failed' | 'cancelled';
export type RunTrigger = 'schedule' | 'misfire' | 'manual' | 'rerun' | 'backfill';

export interface RunRow {
  id: number;
  workflowId: number;
  workflow: string;
  workflowVersion: number;
  scheduleId: number | null;
  fireTime: Date | null;
  trigger: RunTrigger;
  state: RunState;
  queued: boolean;
  owner: string | null;
  params: Record<string, string>;
  commandId: number | null;
  rerunOf: number | null;
  cancelRequestedAt: Date | null;
  createdAt: Date;
  startedAt: Date | null;
  endedAt: Date | null;
}

const COLUMNS = `r.id, r.workflow_id, w.name AS workflow, r.workflow_version, r.schedule_id, r.fire_time, r.trigger, r.state,
  r.queued, r.owner, r.params, r.command_id, r.rerun_of, r.cancel_requested_at, r.created_at, r.started_at, r.ended_at`;

// biome-ignore lint/suspicious/noExplicitAny: row shape is fixed by COLUMNS
function toRun(r: any): RunRow {
  return {
    id: r.id,
    workflowId: r.workflow_id,
    workflow: r.workflow,
    workflowVersion: r.workflow_version,
    scheduleId: r.schedule_id,
    fireTime: r.fire_time,
    trigger: r.trigger,
    state: r.state,
    queued: r.queued,
    owner: r.owner,
    params: r.params,
    commandId: r.command_id,
    rerunOf: r.rerun_of,
    cancelRequestedAt: r.cancel_requested_at,
    createdAt: r.created_at,
    startedAt: r.started_at,
    endedAt: r.ended_at,
  };
}

export interface NewRun {
  workflowId: number;
  /** null = the workflow's current version. */
  workflowVersion: number | null;
  fireTimeMs: number | null;
  trigger: 'manual' | 'rerun' | 'backfill';
  owner: string;
  params: Record<string, string>;
  commandId: number | null;
  rerunOf: number | null;
}

/** Inserts runs that do not come from a schedule fire (manual, re-run, backfill); one statement. */
export async function insertRuns(db: Db, runs: NewRun[]): Promise<number[]> {
  if (runs.length === 0) return [];
  const { rows } = await db.query<{ id: number }>(
    `INSERT INTO runs (workflow_id, workflow_version, fire_time, trigger, owner, params, command_id, rerun_of)
     SELECT n.workflow_id, coalesce(n.version, w.current_version), n.fire_time, n.trigger, n.owner, n.params, n.command_id, n.rerun_of
       FROM unnest($1::bigint[], $2::int[], $3::timestamptz[], $4::text[], $5::text[], $6::jsonb[], $7::bigint[], $8::bigint[])
            WITH ORDINALITY AS n(workflow_id, version, fire_time, trigger, owner, params, command_id, rerun_of, ord)
       JOIN workflows w ON w.id = n.workflow_id
      ORDER BY n.ord
     RETURNING id`,
    [
      runs.map((r) => r.workflowId),
      runs.map((r) => r.workflowVersion),
      runs.map((r) => (r.fireTimeMs === null ? null : new Date(r.fireTimeMs))),
      runs.map((r) => r.trigger),
      runs.map((r) => r.owner),
      runs.map((r) => JSON.stringify(r.params)),
      runs.map((r) => r.commandId),
      runs.map((r) => r.rerunOf),
    ],
  );
  return rows.map((r) => r.id);
}

export async function getRun(db: Db, id: number): Promise<RunRow | null> {
  const { rows } = await db.query(
    `SELECT ${COLUMNS} FROM runs r JOIN workflows w ON w.id = r.workflow_id WHERE r.id = $1`,
    [id],
  );
  return rows[0] ? toRun(rows[0]) : null;
}

/** Newest first (ids follow creation order). */
export async function listRuns(
  db: Db,
  f: { workflow?: string; state?: RunState; sinceMs?: number; limit?: number } = {},
): Promise<RunRow[]> {
  const { rows } = await db.query(
    `SELECT ${COLUMNS} FROM runs r JOIN workflows w ON w.id = r.workflow_id
      WHERE ($1::text IS NULL OR w.name = $1) AND ($2::text IS NULL OR r.state = $2)
        AND ($3::timestamptz IS NULL OR r.created_at >= $3)
      ORDER BY r.id DESC LIMIT $4`,
    [
      f.workflow ?? null,
      f.state ?? null,
      f.sinceMs === undefined ? null : new Date(f.sinceMs),
      f.limit ?? 100,
    ],
  );
  return rows.map(toRun);
}

/** Operator cancel: pending runs end at once; running runs are flagged for their owner to stop. */
export async function requestRunCancel(db: Db, id: number): Promise<RunState | null> {
  const { rows } = await db.query<{ state: RunState }>(
    `UPDATE runs SET
        state = CASE WHEN state = 'pending' THEN 'cancelled' ELSE state END,
        ended_at = CASE WHEN state = 'pending' THEN clock_timestamp() ELSE ended_at END,
        cancel_requested_at = coalesce(cancel_requested_at, clock_timestamp())
      WHERE id = $1 AND state IN ('pending', 'running')
      RETURNING state`,
    [id],
  );
  return rows[0]?.state ?? null;
}
