import type pg from 'pg';
import { type Db, withTransaction } from '../db.js';

/**
 * Retention of ended runs (docs/operations.md#retention): runs that ended (succeeded, failed,
 * cancelled) before a cutoff are deleted with their task attempts, oldest first, in bounded
 * batches — one short transaction per batch, a pause between batches, a cap per minute — so no
 * table is locked for long and a large backlog drains gradually. The leader does it after
 * `db.retention` (fenced by its epoch), operators with `sched-ctl db prune`.
 *
 * A run is kept, whatever its age, while
 * - it is active (`pending`, `running`): only ended runs are candidates;
 * - one of its attempts is still `pending`, `dispatched` or `running`;
 * - a command names it (a re-run not yet claimed: deleting the run would drop the command).
 * A run that a newer run re-ran (`rerun_of`) is deleted; the newer run's `rerun_of` becomes NULL
 * (ON DELETE SET NULL) and the attempts carried over to it are its own rows.
 */

/** The states of an ended run (the predicate of the `runs_ended` index). */
const ENDED = `state IN ('succeeded', 'failed', 'cancelled')`;
/**
 * An old ended run `r` that nothing keeps (see above). In a batch the attempts are looked up per
 * candidate through task_attempts' unique key (it starts with run_id): `OFFSET 0` keeps
 * PostgreSQL from turning the subquery into a join or a hashed subplan, which (active attempts
 * being rare) it would plan as a scan of every attempt in every batch. Counting all of them
 * (`--dry-run`) is the opposite case: one scan is what is wanted there. Commands are few.
 */
const unheld = (perCandidate: boolean) => `NOT EXISTS (SELECT 1 FROM commands c WHERE c.run_id = r.id)
   AND NOT EXISTS (SELECT 1 FROM task_attempts a
                    WHERE a.run_id = r.id AND a.state IN ('pending', 'dispatched', 'running')${perCandidate ? ' OFFSET 0' : ''})`;
const UNHELD = unheld(true);

export interface PruneCounts {
  runs: number;
  attempts: number;
}

/** `olderThanMs` before now, by the database's clock (the clock `ended_at` was written with). */
export async function retentionCutoff(db: Db, olderThanMs: number): Promise<Date> {
  const { rows } = await db.query<{ cutoff: Date }>(
    `SELECT clock_timestamp() - $1::float8 * interval '1 millisecond' AS cutoff`,
    [olderThanMs],
  );
  return (rows[0] as { cutoff: Date }).cutoff;
}

/** What pruning up to `endedBefore` would delete now (`--dry-run`). Reads only; takes no lock. */
export async function countPrunableRuns(db: Db, endedBefore: Date): Promise<PruneCounts> {
  const { rows } = await db.query<PruneCounts>(
    `WITH old AS (
       SELECT r.id FROM runs r WHERE r.${ENDED} AND r.ended_at < $1 AND ${unheld(false)}
     )
     SELECT (SELECT count(*) FROM old)::int AS runs,
            (SELECT count(*) FROM task_attempts a WHERE a.run_id IN (SELECT id FROM old))::int AS attempts`,
    [endedBefore],
  );
  return rows[0] ?? { runs: 0, attempts: 0 };
}

/**
 * Deletes at most `limit` runs that ended before `endedBefore`, oldest first, with their
 * attempts. Must run inside a transaction (`tx`): the candidates are locked first (`FOR UPDATE
 * SKIP LOCKED`: a run another statement holds is left for the next batch), then checked again and
 * deleted by a second statement, whose fresh snapshot sees every command that named a candidate
 * before the lock — and a command inserted after the lock waits for it, then fails on the foreign
 * key (the run is gone), so a re-run is never dropped silently.
 */
export async function pruneRunsBatch(
  tx: Db,
  endedBefore: Date,
  limit: number,
): Promise<PruneCounts & { candidates: number }> {
  const { rows: candidates } = await tx.query<{ id: number }>(
    `SELECT r.id FROM runs r
      WHERE r.${ENDED} AND r.ended_at < $1 AND ${UNHELD}
      ORDER BY r.ended_at LIMIT $2
      FOR UPDATE SKIP LOCKED`,
    [endedBefore, limit],
  );
  if (candidates.length === 0) return { runs: 0, attempts: 0, candidates: 0 };
  // The CTE's count reads the statement's snapshot: the attempts as they were before the cascade.
  const { rows } = await tx.query<PruneCounts>(
    `WITH gone AS (
       DELETE FROM runs r WHERE r.id = ANY($1::bigint[]) AND r.${ENDED} AND ${UNHELD}
       RETURNING r.id
     )
     SELECT (SELECT count(*) FROM gone)::int AS runs,
            (SELECT count(*) FROM task_attempts a WHERE a.run_id IN (SELECT id FROM gone))::int AS attempts`,
    [candidates.map((c) => c.id)],
  );
  return { ...(rows[0] ?? { runs: 0, attempts: 0 }), candidates: candidates.length };
}

export interface PruneEndedRunsOptions {
  /** Runs that ended before this instant are deleted (`retentionCutoff`). */
  endedBefore: Date;
  /** Runs per batch (one transaction). @defaultValue 1000 */
  batchSize?: number;
  /** Pause between two batches. @defaultValue 1000 */
  pauseMs?: number;
  /** At most this many runs per minute: the pause after a batch is lengthened to keep to it; 0 = no cap. @defaultValue 30000 */
  maxRunsPerMinute?: number;
  /** Stop after this many runs (the rest is left for the next pass). @defaultValue unlimited */
  maxRuns?: number;
  /**
   * Called first in each batch's transaction; throwing aborts the batch and the pass. The leader
   * share-locks its epoch here (`lockLeaderEpoch`): a deposed leader deletes nothing.
   */
  fence?: (tx: pg.PoolClient) => Promise<void>;
  /** Aborted: no new batch starts, and the pause ends at once. */
  signal?: AbortSignal;
  /** Told after each batch that deleted something. */
  onBatch?: (batch: PruneCounts, total: PruneCounts) => void;
}

export const DEFAULT_PRUNE_OPTIONS = {
  batchSize: 1000,
  pauseMs: 1000,
  maxRunsPerMinute: 30_000,
} as const;

/**
 * Deletes every run that ended before `endedBefore` (but those kept, see above), batch by batch,
 * until none is left, `maxRuns` is reached or `signal` is aborted. Returns what it deleted.
 */
export async function pruneEndedRuns(pool: pg.Pool, opts: PruneEndedRunsOptions): Promise<PruneCounts> {
  const batchSize = opts.batchSize ?? DEFAULT_PRUNE_OPTIONS.batchSize;
  const pauseMs = opts.pauseMs ?? DEFAULT_PRUNE_OPTIONS.pauseMs;
  const perMinute = opts.maxRunsPerMinute ?? DEFAULT_PRUNE_OPTIONS.maxRunsPerMinute;
  const total: PruneCounts = { runs: 0, attempts: 0 };
  for (;;) {
    if (opts.signal?.aborted) return total;
    const limit = Math.min(batchSize, (opts.maxRuns ?? Number.POSITIVE_INFINITY) - total.runs);
    if (limit <= 0) return total;
    const started = Date.now();
    const batch = await withTransaction(pool, async (tx) => {
      await opts.fence?.(tx);
      return pruneRunsBatch(tx, opts.endedBefore, limit);
    });
    total.runs += batch.runs;
    total.attempts += batch.attempts;
    if (batch.runs > 0) opts.onBatch?.({ runs: batch.runs, attempts: batch.attempts }, { ...total });
    // Fewer than asked: nothing older is left, or the rest is locked by another statement (the
    // next pass looks again).
    if (batch.candidates < limit || batch.runs === 0) return total;
    const budgetMs = perMinute > 0 ? (batch.runs * 60_000) / perMinute : 0;
    await pause(Math.max(pauseMs, budgetMs - (Date.now() - started)), opts.signal);
  }
}

function pause(ms: number, signal: AbortSignal | undefined): Promise<void> {
  if (ms <= 0 || signal?.aborted) return Promise.resolve();
  return new Promise((resolve) => {
    const timer = setTimeout(done, ms);
    function done() {
      clearTimeout(timer);
      signal?.removeEventListener('abort', done);
      resolve();
    }
    signal?.addEventListener('abort', done, { once: true });
  });
}
