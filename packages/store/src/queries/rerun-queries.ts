import type { Db } from '../db.js';

/**
 * Re-run from the failed tasks: the new run starts with a copy of every succeeded attempt of the
 * original run (state succeeded, no worker, the original times and exit code, a log tail saying
 * where it came from). The run driver then plans from the database as always: those tasks count
 * as done, and only the failed, cancelled or never-started ones run. Returns how many were copied.
 */
export async function carryOverSucceededAttempts(
  db: Db,
  fromRunId: number,
  toRunId: number,
): Promise<number> {
  const { rowCount } = await db.query(
    `INSERT INTO task_attempts (run_id, task_name, attempt, shard_index, shard_total, state,
                                started_at, ended_at, exit_code, log_tail)
     SELECT $2, task_name, 1, shard_index, shard_total, 'succeeded', started_at, ended_at, exit_code,
            'carried over from run ' || $3 || ' (attempt ' || attempt || ' succeeded there)'
       FROM task_attempts WHERE run_id = $1 AND state = 'succeeded'`,
    [fromRunId, toRunId, String(fromRunId)],
  );
  return rowCount ?? 0;
}
