import type { Db } from '../db.js';

/** Named queries on schedules; one SQL statement each. Times are epoch ms in and out. */

export interface ScheduleRow {
  id: number;
  workflowId: number;
  cron: string;
  timezone: string;
  misfire: 'skip' | 'fire-once-now' | 'fire-all';
  misfireThresholdMs: number;
  maxCatchUp: number;
  concurrency: 'allow' | 'forbid' | 'replace' | 'queue';
  startAt: number | null;
  endAt: number | null;
  paused: boolean;
  nextFireTime: number | null;
  revision: number;
}

const COLUMNS = `id, workflow_id, cron, timezone, misfire, misfire_threshold_ms, max_catch_up, concurrency,
  (extract(epoch from start_at) * 1000)::bigint AS start_ms, (extract(epoch from end_at) * 1000)::bigint AS end_ms,
  paused, (extract(epoch from next_fire_time) * 1000)::bigint AS next_ms, revision`;

// biome-ignore lint/suspicious/noExplicitAny: row shape is fixed by COLUMNS
function toSchedule(r: any): ScheduleRow {
  return {
    id: r.id,
    workflowId: r.workflow_id,
    cron: r.cron,
    timezone: r.timezone,
    misfire: r.misfire,
    misfireThresholdMs: r.misfire_threshold_ms,
    maxCatchUp: r.max_catch_up,
    concurrency: r.concurrency,
    startAt: r.start_ms,
    endAt: r.end_ms,
    paused: r.paused,
    nextFireTime: r.next_ms,
    revision: r.revision,
  };
}

const ms = (v: number | null) => (v === null ? null : new Date(v));

export interface ScheduleFields {
  cron: string;
  timezone: string;
  misfire: string;
  misfireThresholdMs: number;
  maxCatchUp: number;
  concurrency: string;
  startAt: number | null;
  endAt: number | null;
  paused: boolean;
  nextFireTime: number | null;
}

/**
 * Creates or replaces the schedule of a workflow (keeping its id, so the exactly-once key
 * survives). `keepNextFireTime` keeps the pending fire when cron, zone and bounds did not change.
 */
export async function upsertSchedule(
  db: Db,
  workflowId: number,
  f: ScheduleFields,
  keepNextFireTime: boolean,
): Promise<void> {
  await db.query(
    `INSERT INTO schedules (workflow_id, cron, timezone, misfire, misfire_threshold_ms, max_catch_up, concurrency,
                            start_at, end_at, paused, next_fire_time)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
     ON CONFLICT (workflow_id) DO UPDATE SET
       cron = EXCLUDED.cron, timezone = EXCLUDED.timezone, misfire = EXCLUDED.misfire,
       misfire_threshold_ms = EXCLUDED.misfire_threshold_ms, max_catch_up = EXCLUDED.max_catch_up,
       concurrency = EXCLUDED.concurrency, start_at = EXCLUDED.start_at, end_at = EXCLUDED.end_at,
       paused = EXCLUDED.paused,
       next_fire_time = CASE WHEN $12 THEN schedules.next_fire_time ELSE EXCLUDED.next_fire_time END,
       revision = schedules.revision + 1, updated_at = now()`,
    [
      workflowId,
      f.cron,
      f.timezone,
      f.misfire,
      f.misfireThresholdMs,
      f.maxCatchUp,
      f.concurrency,
      ms(f.startAt),
      ms(f.endAt),
      f.paused,
      ms(f.nextFireTime),
      keepNextFireTime,
    ],
  );
}

export async function deleteScheduleOfWorkflow(db: Db, workflowId: number): Promise<void> {
  await db.query(`DELETE FROM schedules WHERE workflow_id = $1`, [workflowId]);
}

export async function getScheduleOfWorkflow(db: Db, workflowId: number): Promise<ScheduleRow | null> {
  const { rows } = await db.query(`SELECT ${COLUMNS} FROM schedules WHERE workflow_id = $1`, [workflowId]);
  return rows[0] ? toSchedule(rows[0]) : null;
}

/**
 * Schedules of one slot due before `untilMs` (the firer's pre-read window), soonest first.
 * Slot of a schedule = id mod slotCount (ids are sequential, so this spreads them evenly).
 */
export async function listDueSchedules(
  db: Db,
  q: { untilMs: number; slot: number; slotCount: number; limit: number },
): Promise<ScheduleRow[]> {
  const { rows } = await db.query(
    `SELECT ${COLUMNS} FROM schedules
      WHERE NOT paused AND next_fire_time IS NOT NULL AND next_fire_time <= $1
        AND mod(id, $2::bigint) = $3
      ORDER BY next_fire_time LIMIT $4`,
    [new Date(q.untilMs), q.slotCount, q.slot, q.limit],
  );
  return rows.map(toSchedule);
}

/** Pauses or resumes; resuming sets the next fire time the caller computed from now. */
export async function setSchedulePaused(
  db: Db,
  workflowId: number,
  paused: boolean,
  nextFireTime: number | null,
): Promise<boolean> {
  const { rowCount } = await db.query(
    `UPDATE schedules SET paused = $2, next_fire_time = CASE WHEN $2 THEN next_fire_time ELSE $3 END,
            revision = revision + 1, updated_at = now()
      WHERE workflow_id = $1`,
    [workflowId, paused, ms(nextFireTime)],
  );
  return (rowCount ?? 0) === 1;
}
