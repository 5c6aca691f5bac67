import type { CronSchedule, FireRequest, ScheduleAdvance, ScheduleRow } from '@sched/store';

/**
 * What to do with one schedule whose fire time has come (pure; unit-tested with fixed times).
 *
 *   on time (late ≤ misfireThreshold): run for the fire time; next = first fire after it (so a
 *       short stall catches up fire by fire).
 *   misfire (late > misfireThreshold), by policy:
 *       skip          no run; next = first fire after now
 *       fire-once-now one run for the most recent missed fire time; next = first after now
 *       fire-all      one run for each missed fire time, at most maxCatchUp (the most recent
 *                     ones; older ones are dropped and counted); next = first after now
 */
export interface FirePlan {
  advance: ScheduleAdvance;
  fires: FireRequest[];
  misfired: boolean;
  /** Missed fire times not run (skip, fire-once-now, or beyond fire-all's bound); lower bound for fire-all. */
  dropped: number;
}

export function planFire(
  row: Pick<ScheduleRow, 'id' | 'revision' | 'misfire' | 'misfireThresholdMs' | 'maxCatchUp'>,
  cron: CronSchedule,
  fireAtMs: number,
  nowMs: number,
  /** cron.next(fireAtMs) when already known (computed when the fire was armed, off the hot path). */
  precomputedNextMs?: number | null,
): FirePlan {
  const late = nowMs - fireAtMs;
  if (late <= row.misfireThresholdMs) {
    const nextMs = precomputedNextMs === undefined ? cron.next(fireAtMs) : precomputedNextMs;
    return {
      advance: { scheduleId: row.id, expectedMs: fireAtMs, revision: row.revision, nextMs },
      fires: [{ scheduleId: row.id, fireTimeMs: fireAtMs, trigger: 'schedule' }],
      misfired: false,
      dropped: 0,
    };
  }
  const nextMs = cron.next(nowMs);
  const advance = { scheduleId: row.id, expectedMs: fireAtMs, revision: row.revision, nextMs };
  const want = row.misfire === 'skip' ? 0 : row.misfire === 'fire-once-now' ? 1 : row.maxCatchUp;
  // One more than wanted tells whether anything was dropped (for the log line).
  const missed = cron.latest(fireAtMs, nowMs, want + 1);
  const taken = missed.slice(Math.max(0, missed.length - want));
  return {
    advance,
    fires: taken.map((t) => ({ scheduleId: row.id, fireTimeMs: t, trigger: 'misfire' as const })),
    misfired: true,
    dropped: missed.length - taken.length,
  };
}
