import type { Db } from '@sched/store';

/** Scrape-time counts for the metrics (one statement each). */

export async function countRunsByState(db: Db): Promise<Map<string, number>> {
  const { rows } = await db.query<{ state: string; n: number }>(
    `SELECT state, count(*)::int AS n FROM runs GROUP BY state`,
  );
  return new Map(rows.map((r) => [r.state, r.n]));
}

export async function countAttemptsByState(db: Db): Promise<Map<string, number>> {
  const { rows } = await db.query<{ state: string; n: number }>(
    `SELECT state, count(*)::int AS n FROM task_attempts GROUP BY state`,
  );
  return new Map(rows.map((r) => [r.state, r.n]));
}
