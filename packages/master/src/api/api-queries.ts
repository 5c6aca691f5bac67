import type { Db } from '@sched/store';

/**
 * Read queries the REST API needs that the store does not offer; one SQL statement per function.
 * They only read, so they sit with the API rather than in the store's write paths.
 */

export interface WorkflowListRow {
  name: string;
  version: number;
  tasks: number;
  cron: string | null;
  timezone: string | null;
  paused: boolean | null;
  nextFireTime: Date | null;
  activeRuns: number;
  updatedAt: Date;
}

/** Every workflow with its schedule (if any), task count and number of active runs; by name. */
export async function listWorkflowOverview(db: Db): Promise<WorkflowListRow[]> {
  const { rows } = await db.query(
    `SELECT w.name, w.current_version AS version, w.updated_at,
            (SELECT count(*)::int FROM workflow_tasks t WHERE t.workflow_id = w.id AND t.version = w.current_version) AS tasks,
            (SELECT count(*)::int FROM runs r WHERE r.workflow_id = w.id AND r.state IN ('pending', 'running')) AS active_runs,
            s.cron, s.timezone, s.paused, s.next_fire_time
       FROM workflows w LEFT JOIN schedules s ON s.workflow_id = w.id
      ORDER BY w.name`,
  );
  return rows.map((r) => ({
    name: r.name,
    version: r.version,
    tasks: r.tasks,
    cron: r.cron ?? null,
    timezone: r.timezone ?? null,
    paused: r.paused ?? null,
    nextFireTime: r.next_fire_time ?? null,
    activeRuns: r.active_runs,
    updatedAt: r.updated_at,
  }));
}

/** Ids of the runs a command created (a trigger makes one; empty until a master has claimed it). */
export async function runIdsOfCommand(db: Db, commandId: number): Promise<number[]> {
  const { rows } = await db.query<{ id: number }>(`SELECT id FROM runs WHERE command_id = $1 ORDER BY id`, [
    commandId,
  ]);
  return rows.map((r) => r.id);
}

/** A cheap round trip to prove the database answers (readiness). */
export async function pingDatabase(db: Db): Promise<void> {
  await db.query('SELECT 1');
}
