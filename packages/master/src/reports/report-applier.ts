import type { Logger } from '@sched/core';
import { type AttemptReport, FINAL_ATTEMPT_STATES } from '@sched/protocol';
import type { Db } from '@sched/store';
import { notifyOwners } from '../runs/run-wake-channel.js';

/**
 * Applies workers' attempt reports (docs/design.md#runs). Any master applies any report, with a
 * fenced conditional update: the attempt id, the worker incarnation that was given the attempt,
 * and an allowed current state must all match. So a report delivered twice (lost ack, spool
 * replay), a report from a worker whose attempt was failed over, or one for an attempt that was
 * re-assigned changes nothing. Then the run's owner is woken: directly when it is this master,
 * by NOTIFY otherwise.
 *
 * Every report in a batch is answered: `applied` (this call changed the attempt) or `stale`
 * (it can never apply: already applied, fenced out, unknown). Both are acknowledged, so the
 * worker drops them from its spool; only a failure to reach the database leaves them unacked.
 */

// `failed-over`: the worker fenced itself and killed the attempt (worker attempt-result.ts); the
// owner re-runs it per the failover policy, as after the leader's failover.
const FINAL_STATES: ReadonlySet<string> = new Set(FINAL_ATTEMPT_STATES);

export interface ReportOutcome {
  applied: string[];
  stale: string[];
  invalid: { reportId: string; message: string }[];
}

export class ReportApplier {
  constructor(
    private readonly opts: {
      db: Db;
      /** This master's incarnation key: runs it owns are woken directly, the others by NOTIFY. */
      nodeKey: string;
      wakeLocal: (runIds: number[]) => void;
      /**
       * Told, per scheduled run whose first task this batch reports started, the time from its
       * fire time to that start in ms (the `sched_fire_to_start_seconds` histogram).
       */
      onFirstStart?: (fireToStartMs: number[]) => void;
      logger: Logger;
    },
  ) {}

  async apply(reports: AttemptReport[]): Promise<ReportOutcome> {
    const invalid: ReportOutcome['invalid'] = [];
    // The latest report per attempt wins within a batch (a `finished` supersedes a `running`).
    const latest = new Map<number, AttemptReport>();
    const superseded: string[] = [];
    for (const r of reports) {
      const id = Number(r.attemptId);
      const state = r.kind === 'running' ? 'running' : r.result?.state;
      if (
        !Number.isSafeInteger(id) ||
        id <= 0 ||
        !state ||
        (state !== 'running' && !FINAL_STATES.has(state))
      ) {
        invalid.push({ reportId: r.reportId, message: 'not an attempt report sched can apply' });
        continue;
      }
      const prev = latest.get(id);
      if (prev && prev.kind === 'finished' && r.kind === 'running') {
        superseded.push(r.reportId);
        continue;
      }
      if (prev) superseded.push(prev.reportId);
      latest.set(id, r);
    }
    const list = [...latest.values()];
    if (list.length === 0) return { applied: [], stale: superseded, invalid };

    const { rows } = await this.opts.db.query<{
      id: number;
      run_id: number;
      owner: string | null;
      fire_to_start_ms: number | null;
    }>(
      `WITH r AS (
         SELECT * FROM unnest($1::bigint[], $2::text[], $3::text[], $4::int[], $5::text[], $6::text[],
                              $7::timestamptz[], $8::timestamptz[])
                AS r(id, worker_key, state, exit_code, log_tail, error, started_at, ended_at)
       ), first_start AS (
         -- Scheduled runs none of whose attempts had started (the statement's snapshot, before the update).
         SELECT DISTINCT a.run_id FROM task_attempts a JOIN r ON r.id = a.id JOIN runs ON runs.id = a.run_id
          WHERE runs.schedule_id IS NOT NULL
            AND NOT EXISTS (SELECT 1 FROM task_attempts o WHERE o.run_id = a.run_id AND o.started_at IS NOT NULL)
       ), u AS (
         UPDATE task_attempts a
            SET state = r.state,
                started_at = coalesce(a.started_at, r.started_at, clock_timestamp()),
                ended_at = CASE WHEN r.state = 'running' THEN NULL ELSE coalesce(r.ended_at, clock_timestamp()) END,
                exit_code = coalesce(r.exit_code, a.exit_code),
                log_tail = coalesce(r.log_tail, a.log_tail),
                error = coalesce(r.error, a.error)
           FROM r
          WHERE a.id = r.id AND a.worker_key = r.worker_key
            AND (a.state = 'dispatched' OR (a.state = 'running' AND r.state <> 'running'))
         RETURNING a.id, a.run_id, a.started_at
       )
       SELECT u.id, u.run_id, runs.owner,
              CASE WHEN f.run_id IS NULL THEN NULL
                   ELSE (extract(epoch FROM u.started_at - runs.fire_time) * 1000)::float8 END AS fire_to_start_ms
         FROM u JOIN runs ON runs.id = u.run_id LEFT JOIN first_start f ON f.run_id = u.run_id`,
      [
        list.map((r) => Number(r.attemptId)),
        list.map((r) => r.worker),
        list.map((r) => (r.kind === 'running' ? 'running' : (r.result?.state as string))),
        list.map((r) => r.result?.exitCode ?? null),
        list.map((r) => r.result?.logTail ?? null),
        list.map((r) => r.result?.error ?? null),
        list.map((r) => r.startedAt ?? null),
        list.map((r) => r.result?.endedAt ?? null),
      ],
    );

    const appliedIds = new Set(rows.map((r) => r.id));
    if (this.opts.onFirstStart) {
      // One figure per run (the first of its tasks to start), even with several in this batch.
      const perRun = new Map<number, number>();
      for (const r of rows) {
        if (r.fire_to_start_ms === null) continue;
        perRun.set(r.run_id, Math.min(perRun.get(r.run_id) ?? Number.POSITIVE_INFINITY, r.fire_to_start_ms));
      }
      if (perRun.size > 0) this.opts.onFirstStart([...perRun.values()]);
    }
    const mine: number[] = [];
    const others = new Map<string, number[]>();
    for (const r of rows) {
      if (r.owner === this.opts.nodeKey) mine.push(r.run_id);
      else {
        const key = r.owner ?? '*';
        const ids = others.get(key) ?? [];
        ids.push(r.run_id);
        others.set(key, ids);
      }
    }
    if (others.size > 0) await notifyOwners(this.opts.db, others);
    if (mine.length > 0) this.opts.wakeLocal(mine);

    const applied: string[] = [];
    const stale: string[] = [...superseded];
    for (const r of list) (appliedIds.has(Number(r.attemptId)) ? applied : stale).push(r.reportId);
    return { applied, stale, invalid };
  }
}
