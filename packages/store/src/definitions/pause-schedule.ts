import type pg from 'pg';
import { CronSchedule } from '../cron/cron-schedule.js';
import { getScheduleOfWorkflow, setSchedulePaused } from '../queries/schedule-queries.js';
import { getWorkflowByName } from '../queries/workflow-queries.js';

/**
 * Pause and resume a workflow's schedule. Resuming continues from now: fires missed while paused
 * are not misfires (the operator asked for the pause), so next_fire_time is the first after now.
 * Returns false when the workflow or its schedule does not exist.
 */
export async function setWorkflowPaused(
  pool: pg.Pool,
  name: string,
  paused: boolean,
  nowMs = Date.now(),
): Promise<boolean> {
  const wf = await getWorkflowByName(pool, name);
  if (!wf) return false;
  const s = await getScheduleOfWorkflow(pool, wf.id);
  if (!s) return false;
  const next = paused
    ? null
    : new CronSchedule(s.cron, {
        timezone: s.timezone,
        startAt: s.startAt ?? undefined,
        endAt: s.endAt ?? undefined,
      }).next(nowMs);
  return setSchedulePaused(pool, wf.id, paused, next);
}
