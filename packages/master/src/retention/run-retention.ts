import { formatDuration, type Logger, type WithDefaults, withDefaults } from '@sched/core';
import type { LeadershipTerm } from '@sched/registry';
import {
  DEFAULT_PRUNE_OPTIONS,
  type LeaderEpoch,
  type PruneCounts,
  pruneEndedRuns,
  retentionCutoff,
} from '@sched/store';
import type pg from 'pg';
import { lockLeaderEpoch } from '../failover/failover-queries.js';

/**
 * The leader's retention duty (docs/operations.md#retention): for one leadership term, every
 * `intervalMs` (the first time `startDelayMs` after the term starts), delete the runs that ended
 * more than `retentionMs` ago, with their task attempts, in batches (`pruneEndedRuns`: oldest
 * first, `batchSize` runs per transaction, `pauseMs` between batches, at most `maxRunsPerMinute`),
 * until none is left or the term ends. Active runs, runs with an attempt in flight and runs a
 * pending command names are kept.
 *
 * Like every leader-only write it is fenced by the leader epoch: each batch's transaction first
 * share-locks the epoch row on the term's exact (czxid, ZooKeeper id) (`lockLeaderEpoch`) and
 * checks the term (lease included), so a deposed leader deletes nothing. `retentionMs` 0 = keep
 * forever: `run` only waits for the term to end.
 */
export interface RunRetentionOptions {
  pool: pg.Pool;
  /** `db.retention`: ended runs older than this are deleted; 0 = never. */
  retentionMs: number;
  /** Time between two passes. @defaultValue 900000 (15 min) */
  intervalMs?: number;
  /** Time from the term's start to the first pass (failover and reconciliation go first). @defaultValue 60000 */
  startDelayMs?: number;
  /** @defaultValue 1000 */
  batchSize?: number;
  /** @defaultValue 1000 */
  pauseMs?: number;
  /** @defaultValue 30000 */
  maxRunsPerMinute?: number;
  logger: Logger;
  /** Told after each batch (metrics, tests). */
  onPruned?: (batch: PruneCounts) => void;
}

export const DEFAULT_RUN_RETENTION_OPTIONS = {
  intervalMs: 900_000,
  startDelayMs: 60_000,
  ...DEFAULT_PRUNE_OPTIONS,
} as const satisfies Required<
  Pick<RunRetentionOptions, 'intervalMs' | 'startDelayMs' | 'batchSize' | 'pauseMs' | 'maxRunsPerMinute'>
>;

export class RunRetention {
  private readonly opts: WithDefaults<RunRetentionOptions, typeof DEFAULT_RUN_RETENTION_OPTIONS>;
  private readonly log: Logger;

  constructor(opts: RunRetentionOptions) {
    this.opts = withDefaults(opts, DEFAULT_RUN_RETENTION_OPTIONS);
    this.log = opts.logger.child({ component: 'retention' });
  }

  /** Prunes every `intervalMs` until the term ends. Never throws: a failed pass is logged and retried next time. */
  async run(term: LeadershipTerm): Promise<void> {
    if (this.opts.retentionMs <= 0) return;
    let delay = this.opts.startDelayMs;
    while (!term.signal.aborted) {
      if (!(await sleep(delay, term.signal))) return;
      try {
        await this.pass(term);
      } catch (err) {
        if (!term.signal.aborted) this.log.warn({ err }, 'deleting old runs failed; the next pass retries');
      }
      delay = this.opts.intervalMs;
    }
  }

  /** One pass: deletes every run that ended more than `retentionMs` ago (but those kept), batch by batch. */
  async pass(term: LeadershipTerm): Promise<PruneCounts> {
    term.check();
    const epoch: LeaderEpoch = { clusterId: term.clusterId, czxid: Number(term.token) };
    const { pool, retentionMs } = this.opts;
    const endedBefore = await retentionCutoff(pool, retentionMs);
    const total = await pruneEndedRuns(pool, {
      endedBefore,
      batchSize: this.opts.batchSize,
      pauseMs: this.opts.pauseMs,
      maxRunsPerMinute: this.opts.maxRunsPerMinute,
      signal: term.signal,
      fence: async (tx) => {
        term.check();
        await lockLeaderEpoch(tx, epoch);
      },
      onBatch: (batch, sum) => {
        this.log.debug({ ...batch, total: sum }, 'deleted a batch of old runs');
        this.opts.onPruned?.(batch);
      },
    });
    if (total.runs > 0) {
      this.log.info(
        {
          runs: total.runs,
          attempts: total.attempts,
          endedBefore: endedBefore.toISOString(),
          epoch: epoch.czxid,
        },
        `deleted ${total.runs} run(s) and ${total.attempts} task attempt(s) that ended more than ${formatDuration(retentionMs)} ago (db.retention)`,
      );
    }
    return total;
  }
}

/** Sleeps `ms`; false when `signal` was aborted first. */
function sleep(ms: number, signal: AbortSignal): Promise<boolean> {
  if (signal.aborted) return Promise.resolve(false);
  return new Promise((resolve) => {
    const timer = setTimeout(() => {
      signal.removeEventListener('abort', onAbort);
      resolve(true);
    }, ms);
    const onAbort = () => {
      clearTimeout(timer);
      resolve(false);
    };
    signal.addEventListener('abort', onAbort, { once: true });
  });
}
