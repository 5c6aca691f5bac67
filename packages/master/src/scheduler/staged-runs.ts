import type { Logger } from '@sched/core';
import type pg from 'pg';

/**
 * Runs created in a transaction that has not committed yet (a pre-staged fire, a claim of
 * manual triggers), handed to the run driver so that their first attempts are persisted in the
 * same transaction and sent at its commit (docs/scheduling.md#from-fire-to-start).
 */
export interface StagedRun {
  runId: number;
  workflowId: number;
  version: number;
  /** The scheduled fire time; null for a manual run. */
  fireTimeMs: number | null;
  /** The run's parameters (a manual trigger's `-p`); none for scheduled runs. */
  params?: Record<string, string>;
}

/**
 * What `prepareRuns` did inside the transaction: the runs it prepared, and what to do once the
 * transaction has committed (never called if it rolls back).
 */
export interface PreparedRuns {
  runIds: ReadonlySet<number>;
  afterCommit(): void;
}

export type PrepareRuns = (client: pg.PoolClient, runs: StagedRun[]) => Promise<PreparedRuns | null>;

/**
 * `prepareRuns` under a savepoint of the caller's transaction: its failure is rolled back to the
 * savepoint and costs the transaction nothing (the runs are then driven the usual way).
 */
export async function prepareUnderSavepoint(
  client: pg.PoolClient,
  prepareRuns: PrepareRuns | undefined,
  runs: StagedRun[],
  logger: Logger,
): Promise<PreparedRuns | null> {
  if (!prepareRuns || runs.length === 0) return null;
  await client.query('SAVEPOINT prepare_runs');
  try {
    const prepared = await prepareRuns(client, runs);
    await client.query('RELEASE SAVEPOINT prepare_runs');
    return prepared;
  } catch (err) {
    logger.warn(
      { err, runs: runs.length },
      'preparing the first dispatches of new runs failed; they are driven after the commit',
    );
    await client.query('ROLLBACK TO SAVEPOINT prepare_runs');
    return null;
  }
}
