import { randomUUID } from 'node:crypto';
import { type Clock, type Logger, systemClock, type WithDefaults, withDefaults } from '@sched/core';
import type { AttemptReport, AttemptResult } from '@sched/protocol';
import type { Member, MembersView } from '@sched/registry';
import type { Db } from '@sched/store';
import type { WorkerClient } from '../dispatch/worker-client.js';
import type { AttemptSnapshotQuery, SnapshotAnswer } from '../reports/attempt-snapshot-client.js';
import type { ReportOutcome } from '../reports/report-applier.js';

/**
 * The attempt reconciler (docs/design.md#reconciliation, docs/transport.md "Asking a worker"): a
 * master asks a live worker about attempts it has heard nothing of for long, so that a report lost
 * on the way — a worker whose spool cannot be written and whose memory copy did not get through,
 * a worker→master path that is cut while master→worker works, a bug — does not leave an attempt
 * `running` (or `dispatched`) forever on a worker that is alive and registered. The leader's
 * failover covers workers that are gone; this covers the ones that are not.
 *
 * Every `sweepIntervalMs`, while the lease holds, for attempts of runs this master owns that are
 * `running` (since their start) or `dispatched` (since their assignment) for `silentMs` by the
 * database's clock, on a worker that is registered with a heartbeat seen within
 * `heartbeatFreshMs`: at most `maxPerSweep` of them (round robin over the candidates, each asked
 * again at most every `silentMs`) are asked about with `GET /v1/attempts/{id}?worker=KEY`.
 *
 * | the row      | the worker says            | then                                                    |
 * |--------------|----------------------------|---------------------------------------------------------|
 * | any          | final, with its result     | the result is applied as if reported                     |
 * | `dispatched` | `running`                  | a `running` report is applied (the dispatch timeout stops re-sending it) |
 * | any          | `queued`, or `running` as recorded | nothing (a long task; asked again after `silentMs`) |
 * | `dispatched` | not known (404)            | nothing: the dispatch timeout sends it again (idempotent) |
 * | `running`    | not known (404)            | revoke at the row's `dispatch_seq`; `revoked` → applied as `failed-over` (re-run per the task's failover policy, as after the leader's failover); anything else → asked again next sweep |
 * | any          | no usable answer           | nothing (asked again next sweep; a worker that is gone is the failover's) |
 *
 * Everything is applied through the master's `ReportApplier` — the same fenced conditional update
 * as a worker's report (attempt id, the worker incarnation on the row, an allowed current state),
 * so an answer that went stale meanwhile (the real report arrived, the leader failed the attempt
 * over) changes nothing, and a report arriving later is acknowledged as a duplicate.
 */

/** A registered worker as the reconciler needs it. */
export interface ReconcilableWorker {
  key: string;
  /** Registered `host:port`. */
  address: string;
  /** How long ago (monotonic ms) this master last saw the worker's heartbeat change. */
  heartbeatAgeMs: number;
}

export interface AttemptReconcilerOptions {
  db: Db;
  /** This master's incarnation key: only attempts of runs it owns are asked about. */
  nodeKey: string;
  /** Registered workers with the age of their last heartbeat (see {@link WorkerHeartbeats}). */
  workers: () => readonly ReconcilableWorker[];
  /** `GET /v1/attempts/{id}?worker=KEY` (`httpAttemptSnapshots`). */
  snapshot: AttemptSnapshotQuery;
  /** `POST /v1/attempts/revoke` (the run driver's `WorkerClient`). */
  revoke: WorkerClient['revoke'];
  /** The master's `ReportApplier.apply`: fenced, wakes the runs' owners. */
  apply: (reports: AttemptReport[]) => Promise<ReportOutcome>;
  /** False while the registry lease is not valid: nothing is asked or applied. */
  leaseValid: () => boolean;
  logger: Logger;
  clock?: Clock;
  /** Ask about an attempt after this long without a report, and again after each further period. @defaultValue 60000 */
  silentMs?: number;
  /** Most attempts asked about per sweep. @defaultValue 100 */
  maxPerSweep?: number;
  /** @defaultValue 10000 */
  sweepIntervalMs?: number;
  /** Ask only workers whose heartbeat was seen this recently (3 heartbeat intervals). @defaultValue 15000 */
  heartbeatFreshMs?: number;
  /** Requests in flight at once. @defaultValue 8 */
  concurrency?: number;
}

export const DEFAULT_ATTEMPT_RECONCILER_OPTIONS = {
  silentMs: 60_000,
  maxPerSweep: 100,
  sweepIntervalMs: 10_000,
  heartbeatFreshMs: 15_000,
  concurrency: 8,
} as const satisfies Required<
  Pick<
    AttemptReconcilerOptions,
    'silentMs' | 'maxPerSweep' | 'sweepIntervalMs' | 'heartbeatFreshMs' | 'concurrency'
  >
>;

/** What one sweep did (for logs and tests). */
export interface ReconcileSweep {
  /** Attempts asked about. */
  asked: number;
  /** Results the workers had and the masters had not, applied now. */
  finished: number;
  /** `dispatched` attempts found running, applied `running`. */
  started: number;
  /** `running` attempts their worker did not know, revoked and applied `failed-over`. */
  lost: number;
  /** No usable answer (asked again later). */
  unanswered: number;
}

interface Candidate {
  id: number;
  runId: number;
  taskName: string;
  attempt: number;
  state: 'dispatched' | 'running';
  workerKey: string;
  dispatchSeq: number;
}

export class AttemptReconciler {
  private readonly opts: WithDefaults<AttemptReconcilerOptions, typeof DEFAULT_ATTEMPT_RECONCILER_OPTIONS>;
  private readonly clock: Clock;
  /** Attempt id → when (monotonic ms) it was last asked about. */
  private readonly asked = new Map<number, number>();
  /** Round robin over the candidates: the next sweep starts after this attempt id. */
  private cursor = 0;
  private timer: NodeJS.Timeout | null = null;
  private running: Promise<unknown> | null = null;

  constructor(options: AttemptReconcilerOptions) {
    this.opts = withDefaults(options, DEFAULT_ATTEMPT_RECONCILER_OPTIONS);
    this.clock = options.clock ?? systemClock;
  }

  start(): void {
    if (this.timer) return;
    this.timer = setInterval(() => {
      if (this.running) return;
      this.running = this.sweep()
        .catch((err) => this.opts.logger.warn({ err }, 'attempt reconciliation sweep failed'))
        .finally(() => {
          this.running = null;
        });
    }, this.opts.sweepIntervalMs);
    this.timer.unref();
  }

  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    await this.running;
  }

  /** One sweep (see the class comment). */
  async sweep(): Promise<ReconcileSweep> {
    const done: ReconcileSweep = { asked: 0, finished: 0, started: 0, lost: 0, unanswered: 0 };
    if (!this.opts.leaseValid()) return done;
    const live = new Map<string, ReconcilableWorker>();
    for (const w of this.opts.workers())
      if (w.heartbeatAgeMs <= this.opts.heartbeatFreshMs) live.set(w.key, w);
    if (live.size === 0) return done;

    const now = this.clock.monotonic();
    for (const [id, at] of this.asked) if (now - at >= this.opts.silentMs) this.asked.delete(id);
    const rows = await this.candidates([...live.keys()]);
    this.cursor = rows.length < this.opts.maxPerSweep ? 0 : (rows.at(-1)?.id ?? 0);
    const due = rows.filter((r) => !this.asked.has(r.id));
    if (due.length === 0) return done;

    // 1. Ask each worker about its attempts (bounded concurrency).
    const answers = new Map<number, SnapshotAnswer>();
    let next = 0;
    const ask = async () => {
      while (next < due.length) {
        const c = due[next++] as Candidate;
        const w = live.get(c.workerKey) as ReconcilableWorker;
        this.asked.set(c.id, this.clock.monotonic());
        answers.set(c.id, await this.opts.snapshot(w.address, c.workerKey, String(c.id)));
      }
    };
    await Promise.all(Array.from({ length: Math.min(this.opts.concurrency, due.length) }, ask));
    done.asked = due.length;

    // 2. Classify; `running` rows their worker does not know are revoked first (one request per worker).
    const reports: { report: AttemptReport; c: Candidate; why: 'finished' | 'started' | 'lost' }[] = [];
    const unknownRunning = new Map<string, Candidate[]>();
    for (const c of due) {
      const answer = answers.get(c.id) as SnapshotAnswer;
      if (answer.kind === 'no-answer') {
        done.unanswered++;
        this.opts.logger.debug(
          { attemptId: c.id, worker: c.workerKey, reason: answer.reason },
          'worker not asked',
        );
        continue;
      }
      if (answer.kind === 'unknown') {
        // A dispatched one may never have arrived: the dispatch timeout sends it again.
        if (c.state === 'running')
          unknownRunning.set(c.workerKey, [...(unknownRunning.get(c.workerKey) ?? []), c]);
        continue;
      }
      const s = answer.snapshot;
      if (s.result !== null) {
        reports.push({ report: this.finishedReport(c, s.result as AttemptResult), c, why: 'finished' });
      } else if (s.state === 'running' && c.state === 'dispatched') {
        reports.push({ report: this.runningReport(c, s.startedAt), c, why: 'started' });
      }
    }
    for (const [workerKey, list] of unknownRunning) {
      const w = live.get(workerKey) as ReconcilableWorker;
      let states: Map<string, string>;
      try {
        states = await this.opts.revoke(
          w.address,
          workerKey,
          list.map((c) => ({ attemptId: String(c.id), dispatchSeq: c.dispatchSeq })),
        );
      } catch (err) {
        done.unanswered += list.length;
        for (const c of list) this.asked.delete(c.id);
        this.opts.logger.debug(
          { err, worker: workerKey },
          'revoke of attempts the worker does not know failed',
        );
        continue;
      }
      for (const c of list) {
        if (states.get(String(c.id)) === 'revoked') {
          reports.push({ report: this.lostReport(c), c, why: 'lost' });
        } else {
          // It knows it after all (it appeared between the two requests): asked again next sweep.
          this.asked.delete(c.id);
        }
      }
    }
    if (reports.length === 0) return done;

    // 3. Apply through the fenced report path: a stale answer changes nothing.
    const { applied } = await this.opts.apply(reports.map((r) => r.report));
    const appliedIds = new Set(applied);
    for (const { report, c, why } of reports) {
      if (!appliedIds.has(report.reportId)) continue;
      done[why]++;
      const at = { attemptId: c.id, runId: c.runId, task: c.taskName, worker: c.workerKey };
      if (why === 'finished') {
        this.opts.logger.warn(
          { ...at, state: report.result?.state },
          `attempt ${c.id} had ended ${report.result?.state} on worker ${c.workerKey} but no master heard of it; its result, asked of the worker, is applied`,
        );
      } else if (why === 'started') {
        this.opts.logger.info(
          at,
          `attempt ${c.id} runs on worker ${c.workerKey} though no master heard of its start; marked running`,
        );
      } else {
        this.opts.logger.warn(
          at,
          `attempt ${c.id} was running on worker ${c.workerKey}, which no longer knows it and has revoked it; failed over (re-run per the task's failover policy)`,
        );
      }
    }
    return done;
  }

  /** Attempts of owned active runs on `workers`, silent for `silentMs`, after the cursor (by id). */
  private async candidates(workers: string[]): Promise<Candidate[]> {
    const { rows } = await this.opts.db.query<{
      id: number;
      run_id: number;
      task_name: string;
      attempt: number;
      state: 'dispatched' | 'running';
      worker_key: string;
      dispatch_seq: number;
    }>(
      `SELECT a.id, a.run_id, a.task_name, a.attempt, a.state, a.worker_key, a.dispatch_seq
         FROM task_attempts a JOIN runs r ON r.id = a.run_id
        WHERE a.worker_key = ANY($2::text[]) AND a.state IN ('dispatched', 'running')
          AND r.owner = $1 AND r.state IN ('pending', 'running')
          AND CASE WHEN a.state = 'running' THEN coalesce(a.started_at, a.dispatched_at) ELSE a.dispatched_at END
              < clock_timestamp() - make_interval(secs => $3 / 1000.0)
          AND a.id > $4
        ORDER BY a.id LIMIT $5`,
      [this.opts.nodeKey, workers, this.opts.silentMs, this.cursor, this.opts.maxPerSweep],
    );
    return rows.map((r) => ({
      id: r.id,
      runId: r.run_id,
      taskName: r.task_name,
      attempt: r.attempt,
      state: r.state,
      workerKey: r.worker_key,
      dispatchSeq: r.dispatch_seq,
    }));
  }

  private base(c: Candidate): Omit<AttemptReport, 'kind' | 'startedAt' | 'result'> {
    return {
      reportId: `reconciled-${randomUUID()}`,
      seq: 0,
      attemptId: String(c.id),
      runId: String(c.runId),
      taskName: c.taskName,
      attempt: c.attempt,
      // The incarnation on the row: the applier's fence.
      worker: c.workerKey,
      at: new Date(this.clock.now()).toISOString(),
    };
  }

  private finishedReport(c: Candidate, result: AttemptResult): AttemptReport {
    return { ...this.base(c), kind: 'finished', startedAt: result.startedAt, result };
  }

  private runningReport(c: Candidate, startedAt: string | null): AttemptReport {
    const at = new Date(this.clock.now()).toISOString();
    return { ...this.base(c), kind: 'running', startedAt: startedAt ?? at, result: null };
  }

  private lostReport(c: Candidate): AttemptReport {
    const at = new Date(this.clock.now()).toISOString();
    const result: AttemptResult = {
      attemptId: String(c.id),
      state: 'failed-over',
      exitCode: null,
      signal: null,
      httpStatus: null,
      startedAt: at,
      endedAt: at,
      durationMs: 0,
      logTail: '',
      logBytes: 0,
      logTruncated: false,
      error: `worker ${c.workerKey} no longer knows this attempt (its result never reached a master); failed over`,
    };
    // The row keeps the start time its `running` report set (the applier only fills a missing one).
    return { ...this.base(c), kind: 'finished', startedAt: at, result };
  }
}

/**
 * Registered workers with the age of their last heartbeat, measured on this master's monotonic
 * clock from when the registry view last saw the worker's znode change (every heartbeat changes
 * it): no comparison of the worker's wall clock with this one.
 */
export class WorkerHeartbeats {
  private readonly seen = new Map<string, number>();

  constructor(
    private readonly view: Pick<MembersView, 'list' | 'on'>,
    private readonly clock: Clock = systemClock,
  ) {
    const mark = (m: Member) => this.seen.set(m.key, this.clock.monotonic());
    for (const m of view.list()) mark(m);
    view.on('added', mark);
    view.on('updated', mark);
    view.on('removed', (m) => this.seen.delete(m.key));
  }

  list(): ReconcilableWorker[] {
    const now = this.clock.monotonic();
    return this.view.list().map((m) => ({
      key: m.key,
      address: m.address,
      heartbeatAgeMs: now - (this.seen.get(m.key) ?? now),
    }));
  }
}
