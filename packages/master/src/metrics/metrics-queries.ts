import type { Db } from '@sched/store';

/**
 * Scrape-time counts for the metrics (one statement each). Only active states are counted: they
 * are few rows and covered by partial indexes, so a scrape stays cheap however long the history
 * grows. Ended runs are counted as they end (`sched_runs_ended_total`), not by scanning history.
 */

export async function countActiveRunsByState(db: Db): Promise<Map<string, number>> {
  const { rows } = await db.query<{ state: string; n: number }>(
    `SELECT state, count(*)::int AS n FROM runs WHERE state IN ('pending', 'running') GROUP BY state`,
  );
  return new Map(rows.map((r) => [r.state, r.n]));
}

export async function countActiveAttemptsByState(db: Db): Promise<Map<string, number>> {
  const { rows } = await db.query<{ state: string; n: number }>(
    `SELECT state, count(*)::int AS n FROM task_attempts
      WHERE state IN ('pending', 'dispatched', 'running') GROUP BY state`,
  );
  return new Map(rows.map((r) => [r.state, r.n]));
}
