import type { Db } from '../db.js';
import type { ConcurrencyPolicy } from '../definitions/definition-types.js';

/**
 * The exactly-once fire (docs/design.md#firing): ONE statement that, for a batch of schedules,
 * compare-and-sets next_fire_time (id, expected next_fire_time, revision, not paused) and inserts
 * the runs of the schedules it advanced, with the unique key (schedule_id, fire_time) and
 * ON CONFLICT DO NOTHING. A schedule whose CAS fails (another master fired it, the definition
 * changed, it was paused) gets no run. The concurrency policy is applied in the same statement
 * from the snapshot it reads:
 *   allow   — every fire makes a run;
 *   forbid  — no run while the workflow has a pending/running run (only the first of a batch);
 *   replace — pending runs of the workflow are cancelled, running ones get cancel_requested_at,
 *             and only the latest fire of the batch makes a run;
 *   queue   — the run is created with queued = true while another run is active (it starts when
 *             releaseQueuedRun finds the workflow idle).
 */

export interface ScheduleAdvance {
  scheduleId: number;
  expectedMs: number;
  revision: number;
  /** New next_fire_time; null = the schedule has no more fire times. */
  nextMs: number | null;
}

export interface FireRequest {
  scheduleId: number;
  fireTimeMs: number;
  trigger: 'schedule' | 'misfire';
}

export interface FiredRunRow {
  runId: number;
  fireTimeMs: number;
  queued: boolean;
  workflowId: number;
  /** The definition version the run was created with. */
  version: number;
}

export interface FireOutcome {
  scheduleId: number;
  /** Whether this caller's CAS advanced the schedule. */
  advanced: boolean;
  /** Runs created (empty when the policy held the fire back, or nothing was due). */
  runs: FiredRunRow[];
}

const CAS_CTE = `cas AS (
       SELECT * FROM unnest($1::bigint[], $2::timestamptz[], $3::bigint[], $4::timestamptz[]) AS c(id, expected, revision, next)
     ), advanced AS (
       UPDATE schedules s SET next_fire_time = cas.next
         FROM cas
        WHERE s.id = cas.id AND s.next_fire_time = cas.expected AND s.revision = cas.revision AND NOT s.paused
          AND s.concurrency = $9
       RETURNING s.id, s.workflow_id
     ), wanted AS (
       SELECT f.schedule_id, f.fire_time, f.trigger,
              row_number() OVER (PARTITION BY f.schedule_id ORDER BY f.fire_time) AS first_rank,
              row_number() OVER (PARTITION BY f.schedule_id ORDER BY f.fire_time DESC) AS last_rank
         FROM unnest($5::bigint[], $6::timestamptz[], $7::text[]) AS f(schedule_id, fire_time, trigger)
     )`;

const BUSY = `EXISTS (SELECT 1 FROM runs r WHERE r.workflow_id = a.workflow_id AND r.state IN ('pending', 'running'))`;

// Advanced schedules and created runs as two row kinds (a join here would be quadratic: CTE scans have no index).
const RESULT = `SELECT a.id AS schedule_id, NULL::bigint AS run_id, NULL::bigint AS fire_ms, NULL::boolean AS queued,
            NULL::bigint AS workflow_id, NULL::int AS version FROM advanced a
     UNION ALL
     SELECT i.schedule_id, i.id, (extract(epoch from i.fire_time) * 1000)::bigint, i.queued, i.workflow_id, i.workflow_version
       FROM inserted i`;

const INSERT_HEAD = `INSERT INTO runs (workflow_id, workflow_version, schedule_id, fire_time, trigger, owner, queued)`;

// One statement text per policy, so the common case (allow) carries none of the others' work.
const FIRE_SQL: Record<ConcurrencyPolicy, string> = {
  // created_at: a pre-staged fire (executed before its fire time, committed at it) records the
  // fire time; otherwise the insert time. Either way it is ≤ the commit, and ≥ the fire time.
  allow: `WITH ${CAS_CTE}, inserted AS (
       INSERT INTO runs (workflow_id, workflow_version, schedule_id, fire_time, trigger, owner, queued, created_at)
       SELECT a.workflow_id, w.current_version, a.id, f.fire_time, f.trigger, $8, false, greatest(clock_timestamp(), f.fire_time)
         FROM advanced a JOIN wanted f ON f.schedule_id = a.id JOIN workflows w ON w.id = a.workflow_id
       ON CONFLICT (schedule_id, fire_time) DO NOTHING
       RETURNING id, schedule_id, fire_time, queued, workflow_id, workflow_version
     ) ${RESULT}`,
  forbid: `WITH ${CAS_CTE}, inserted AS (
       ${INSERT_HEAD}
       SELECT a.workflow_id, w.current_version, a.id, f.fire_time, f.trigger, $8, false
         FROM advanced a JOIN wanted f ON f.schedule_id = a.id JOIN workflows w ON w.id = a.workflow_id
        WHERE f.first_rank = 1 AND NOT ${BUSY}
       ON CONFLICT (schedule_id, fire_time) DO NOTHING
       RETURNING id, schedule_id, fire_time, queued, workflow_id, workflow_version
     ) ${RESULT}`,
  queue: `WITH ${CAS_CTE}, inserted AS (
       ${INSERT_HEAD}
       SELECT a.workflow_id, w.current_version, a.id, f.fire_time, f.trigger, $8, f.first_rank > 1 OR ${BUSY}
         FROM advanced a JOIN wanted f ON f.schedule_id = a.id JOIN workflows w ON w.id = a.workflow_id
       ON CONFLICT (schedule_id, fire_time) DO NOTHING
       RETURNING id, schedule_id, fire_time, queued, workflow_id, workflow_version
     ) ${RESULT}`,
  replace: `WITH ${CAS_CTE}, cancelled AS (
       UPDATE runs r SET state = 'cancelled', ended_at = clock_timestamp()
         FROM advanced a
        WHERE r.workflow_id = a.workflow_id AND r.state = 'pending'
       RETURNING r.id
     ), cancel_requested AS (
       UPDATE runs r SET cancel_requested_at = clock_timestamp()
         FROM advanced a
        WHERE r.workflow_id = a.workflow_id AND r.state = 'running' AND r.cancel_requested_at IS NULL
       RETURNING r.id
     ), inserted AS (
       ${INSERT_HEAD}
       SELECT a.workflow_id, w.current_version, a.id, f.fire_time, f.trigger, $8, false
         FROM advanced a JOIN wanted f ON f.schedule_id = a.id JOIN workflows w ON w.id = a.workflow_id
        WHERE f.last_rank = 1
       ON CONFLICT (schedule_id, fire_time) DO NOTHING
       RETURNING id, schedule_id, fire_time, queued, workflow_id, workflow_version
     ) ${RESULT}`,
};

/**
 * Fires a batch of schedules that all have concurrency policy `policy` (the CAS also checks the
 * stored policy, so a batch built from a stale copy simply loses its CAS).
 */
export async function fireSchedules(
  db: Db,
  owner: string,
  policy: ConcurrencyPolicy,
  advances: ScheduleAdvance[],
  fires: FireRequest[],
): Promise<FireOutcome[]> {
  if (advances.length === 0) return [];
  const { rows } = await db.query<{
    schedule_id: number;
    run_id: number | null;
    fire_ms: number | null;
    queued: boolean | null;
    workflow_id: number | null;
    version: number | null;
  }>({
    name: `sched_fire_${policy}`,
    text: FIRE_SQL[policy],
    values: [
      advances.map((a) => a.scheduleId),
      advances.map((a) => new Date(a.expectedMs)),
      advances.map((a) => a.revision),
      advances.map((a) => (a.nextMs === null ? null : new Date(a.nextMs))),
      fires.map((f) => f.scheduleId),
      fires.map((f) => new Date(f.fireTimeMs)),
      fires.map((f) => f.trigger),
      owner,
      policy,
    ],
  });
  const byId = new Map<number, FireOutcome>();
  for (const a of advances) byId.set(a.scheduleId, { scheduleId: a.scheduleId, advanced: false, runs: [] });
  for (const r of rows) {
    const o = byId.get(r.schedule_id);
    if (!o) continue;
    o.advanced = true;
    if (r.run_id !== null && r.fire_ms !== null) {
      o.runs.push({
        runId: r.run_id,
        fireTimeMs: r.fire_ms,
        queued: r.queued === true,
        workflowId: Number(r.workflow_id),
        version: Number(r.version),
      });
    }
  }
  return [...byId.values()];
}

/**
 * Starts the oldest queued run of a workflow when no other run of it is active (concurrency
 * `queue`). Returns the run released, if any. Safe to call from any master at any time.
 */
export async function releaseQueuedRun(db: Db, workflowId: number): Promise<number | null> {
  const { rows } = await db.query<{ id: number }>(
    `UPDATE runs SET queued = false
      WHERE id = (SELECT id FROM runs WHERE workflow_id = $1 AND queued AND state = 'pending' ORDER BY fire_time, id LIMIT 1)
        AND NOT EXISTS (SELECT 1 FROM runs WHERE workflow_id = $1 AND state IN ('pending', 'running') AND NOT queued)
      RETURNING id`,
    [workflowId],
  );
  return rows[0]?.id ?? null;
}

/** Workflows (among those with queued runs) whose queue can move: nothing active that is not queued. */
export async function listReleasableQueues(db: Db, limit: number): Promise<number[]> {
  const { rows } = await db.query<{ workflow_id: number }>(
    `SELECT DISTINCT q.workflow_id FROM runs q
      WHERE q.queued AND q.state = 'pending'
        AND NOT EXISTS (SELECT 1 FROM runs r WHERE r.workflow_id = q.workflow_id AND r.state IN ('pending', 'running') AND NOT r.queued)
      LIMIT $1`,
    [limit],
  );
  return rows.map((r) => r.workflow_id);
}
