import { type Logger, SchedError, withDefaults } from '@sched/core';
import type { AttemptReport, NewAttemptReport, ReportAck } from '@sched/protocol';
import type { ReportSpool } from './report-spool.js';

export interface ReportBackoff {
  /** First retry delay. @defaultValue 100 */
  initialMs: number;
  /** Largest retry delay. @defaultValue 10000 */
  maxMs: number;
  /** Growth per consecutive failure. @defaultValue 2 */
  factor: number;
  /** ± fraction of randomness so many workers do not retry in step. @defaultValue 0.2 */
  jitter: number;
}

export interface ReportSenderOptions {
  spool: ReportSpool;
  /**
   * Delivers a batch (in spool order) to a live master and returns its answer. Throwing means
   * "not delivered, retry later"; reports neither acked nor rejected are retried too.
   */
  send: (batch: AttemptReport[]) => Promise<ReportAck>;
  /** Most reports per send. @defaultValue 500 */
  maxBatch?: number;
  /**
   * Largest batch, bytes of JSON (at least one report is always sent): a batch of finished
   * reports with long log tails stays under the master's body limit (16 MiB). @defaultValue 4 MiB
   */
  maxBatchBytes?: number;
  /** Retry delays after failed sends; unset fields keep {@link DEFAULT_REPORT_BACKOFF}. */
  backoff?: Partial<ReportBackoff>;
  logger?: Logger;
  /** Uniform in [0, 1), for jitter. @defaultValue Math.random */
  random?: () => number;
  /**
   * While the spool cannot be written, how often the reports held only in memory are written to
   * it again. @defaultValue 5000
   */
  spoolRetryMs?: number;
  /** Told when the spool starts failing and when it is writable again (heartbeat, health). */
  onSpoolHealth?: (health: SpoolHealth) => void;
}

/**
 * Whether reports reach the spool (`GET /v1/health`'s `reportSpool`, the heartbeat's
 * `reportSpool`, the `sched_worker_report_spool_failing` metric).
 */
export interface SpoolHealth {
  /** `failing`: the last write to the spool failed; new reports are held in memory and sent anyway. */
  state: 'ok' | 'failing';
  /** The spool directory. */
  path: string;
  /** ISO 8601: when the current failure began; null while ok. */
  since: string | null;
  /** The last write error, e.g. `ENOSPC: no space left on device, write`; null while ok. */
  error: string | null;
  /** Reports held only in memory, not on disk: lost if the worker stops before the spool takes them. */
  unspooled: number;
}

export const DEFAULT_REPORT_BACKOFF = {
  initialMs: 100,
  maxMs: 10_000,
  factor: 2,
  jitter: 0.2,
} as const satisfies ReportBackoff;

export const DEFAULT_REPORT_SENDER_OPTIONS = {
  maxBatch: 500,
  maxBatchBytes: 4 * 1024 * 1024,
  backoff: DEFAULT_REPORT_BACKOFF,
  random: Math.random,
  spoolRetryMs: 5_000,
} as const satisfies Required<
  Pick<ReportSenderOptions, 'maxBatch' | 'maxBatchBytes' | 'backoff' | 'random' | 'spoolRetryMs'>
>;

/**
 * Sends attempt reports to masters without losing any:
 *
 *   submit → spooled (group commit, fsync) → sent in seq order, batched → acked → removed
 *                                              ↘ failed → retried with exponential backoff
 *
 * On start, whatever a previous run left in the spool is replayed first. Only one batch is in
 * flight at a time, so reports of one attempt (running, then finished) arrive in order.
 *
 * A spool that cannot be written (disk full, read-only, gone) loses no report and blocks nothing:
 * the reports of a failed write are held in memory and sent all the same (best effort: a stop or
 * crash before a master acknowledges them loses them), the write is retried every
 * `spoolRetryMs` until the spool takes them, and the failure is logged once, at error level, with
 * the path and what the operator must do, and exposed by {@link ReportSender.spoolHealth}.
 * A master that never hears of an attempt asks the worker (docs/design.md#reconciliation).
 *
 * | state    | meaning                               | next                 |
 * |----------|---------------------------------------|----------------------|
 * | created  | constructed                           | running (start)      |
 * | running  | sending loop active                   | stopped (stop)       |
 * | stopped  | loop ended; unacked reports stay spooled | (final)           |
 */
export class ReportSender {
  private state: 'created' | 'running' | 'stopped' = 'created';
  private readonly backoff: ReportBackoff;
  private readonly maxBatch: number;
  private readonly maxBatchBytes: number;
  private readonly random: () => number;
  /** Durable, not yet acknowledged, in seq order. */
  private queue: AttemptReport[] = [];
  /** Submitted, waiting for the next group commit. */
  private toWrite: { report: AttemptReport; resolve: (r: { durable: boolean }) => void }[] = [];
  private writing: Promise<void> | null = null;
  /** Taken from `toWrite`, being written to the spool now. */
  private inWrite = 0;
  private seq = 0;
  private failures = 0;
  /** Ends the wait for new reports (set while the queue is empty). */
  private wakeIdle: (() => void) | null = null;
  /** Ends a backoff sleep early (only stop does: new reports must not cut a backoff short). */
  private cancelSleep: (() => void) | null = null;
  private loop: Promise<void> | null = null;
  private idleWaiters: (() => void)[] = [];
  private delivered = 0;
  private readonly spoolRetryMs: number;
  /** Reports in `queue` that no spool write took yet (held in memory only), by report id. */
  private readonly unspooled = new Map<string, AttemptReport>();
  /** The current spool failure; null while writes succeed. */
  private spoolFailure: { since: string; error: string } | null = null;
  private spoolRetryTimer: NodeJS.Timeout | null = null;
  private spoolRetry: Promise<void> | null = null;
  /** Deleting acknowledged reports' segments failed (said once until a delete succeeds). */
  private ackFailing = false;

  constructor(private readonly opts: ReportSenderOptions) {
    const { backoff, maxBatch, maxBatchBytes, random, spoolRetryMs } = withDefaults(
      opts,
      DEFAULT_REPORT_SENDER_OPTIONS,
    );
    this.backoff = withDefaults(backoff, DEFAULT_REPORT_BACKOFF);
    this.maxBatch = maxBatch;
    this.maxBatchBytes = maxBatchBytes;
    this.random = random;
    this.spoolRetryMs = spoolRetryMs;
  }

  /** Opens the spool, queues what it held (replay) and starts sending. */
  async start(): Promise<{ replayed: number }> {
    if (this.state !== 'created')
      throw new SchedError('SENDER_STATE', `ReportSender.start in state ${this.state}`);
    const replay = await this.opts.spool.open();
    this.seq = this.opts.spool.lastSeq;
    this.queue.push(...replay);
    this.state = 'running';
    if (replay.length > 0)
      this.opts.logger?.info({ reports: replay.length }, 'replaying spooled attempt reports');
    this.loop = this.run();
    return { replayed: replay.length };
  }

  /** Reports not yet acknowledged (spooled, about to be, or held in memory while the spool fails). */
  get pending(): number {
    return this.queue.length + this.toWrite.length + this.inWrite;
  }

  /** Reports acknowledged or rejected by a master since start. */
  get deliveredCount(): number {
    return this.delivered;
  }

  /** Whether the spool takes reports now, and how many are held only in memory. */
  get spoolHealth(): SpoolHealth {
    return {
      state: this.spoolFailure ? 'failing' : 'ok',
      path: this.opts.spool.dir,
      since: this.spoolFailure?.since ?? null,
      error: this.spoolFailure?.error ?? null,
      unspooled: this.unspooled.size,
    };
  }

  /**
   * Spools a report; resolves once it is on disk (fsync'd), `durable: true`. It is then sent
   * until acknowledged. When the spool cannot be written, resolves `durable: false` once the
   * report is held in memory: it is sent all the same and written to the spool when it can be.
   */
  submit(report: NewAttemptReport): Promise<{ durable: boolean }> {
    if (this.state !== 'running') {
      return Promise.reject(
        new SchedError('SENDER_STATE', `cannot submit a report: sender is ${this.state}`),
      );
    }
    this.seq += 1;
    const full: AttemptReport = { ...report, seq: this.seq };
    const queued = new Promise<{ durable: boolean }>((resolve) =>
      this.toWrite.push({ report: full, resolve }),
    );
    if (!this.writing) this.writing = this.groupCommit();
    return queued;
  }

  /** Resolves once nothing is pending, or rejects after `timeoutMs`. */
  async drained(timeoutMs = 30_000): Promise<void> {
    if (this.pending === 0) return;
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(
        () =>
          reject(
            new SchedError('TIMEOUT', `${this.pending} reports still unacknowledged after ${timeoutMs} ms`),
          ),
        timeoutMs,
      );
      this.idleWaiters.push(() => {
        clearTimeout(timer);
        resolve();
      });
    });
  }

  /** Stops sending; unacknowledged reports stay in the spool for the next start. */
  async stop(): Promise<void> {
    if (this.state === 'stopped') return;
    this.state = 'stopped';
    this.cancelSleep?.();
    this.wakeIdle?.();
    await this.writing;
    await this.loop;
    if (this.spoolRetryTimer) clearTimeout(this.spoolRetryTimer);
    this.spoolRetryTimer = null;
    await this.spoolRetry;
    // A last try, so that what is still unacknowledged survives for the next start.
    if (this.unspooled.size > 0) await this.writeUnspooled();
    if (this.unspooled.size > 0) {
      this.opts.logger?.error(
        { reports: this.unspooled.size, path: this.opts.spool.dir },
        `${this.unspooled.size} attempt report(s) were never acknowledged nor written to the spool ${this.opts.spool.dir}; they are lost with this stop (the leader's failover of this incarnation re-runs the attempts they were about, per their failover policy)`,
      );
    }
  }

  private async groupCommit(): Promise<void> {
    while (this.toWrite.length > 0) {
      const batch = this.toWrite;
      this.toWrite = [];
      this.inWrite = batch.length;
      const reports = batch.map((b) => b.report);
      let durable = true;
      try {
        await this.opts.spool.append(reports);
        // The spool works again: write what it missed now rather than at the next retry.
        if (this.spoolFailure) this.retrySpoolSoon(0);
      } catch (err) {
        // Not durable, but not lost: held in memory and sent all the same; written once the spool takes it.
        durable = false;
        for (const r of reports) this.unspooled.set(r.reportId, r);
        this.spoolFailed(err, reports.length);
      } finally {
        this.inWrite = 0;
      }
      this.queue.push(...reports);
      for (const b of batch) b.resolve({ durable });
      this.wakeIdle?.();
    }
    if (this.queue.length === 0) this.notifyIdle();
    this.writing = null;
  }

  /** The head of the queue, at most `maxBatch` reports and `maxBatchBytes` of JSON (at least one). */
  private nextWindow(): AttemptReport[] {
    let bytes = 0;
    let n = 0;
    while (n < this.queue.length && n < this.maxBatch) {
      bytes += reportBytes(this.queue[n] as AttemptReport);
      if (n > 0 && bytes > this.maxBatchBytes) break;
      n += 1;
    }
    return this.queue.slice(0, n);
  }

  private async run(): Promise<void> {
    while (this.state === 'running') {
      if (this.queue.length === 0) {
        this.notifyIdle();
        await new Promise<void>((resolve) => {
          this.wakeIdle = resolve;
        });
        this.wakeIdle = null;
        continue;
      }
      const window = this.nextWindow();
      // A `running` report whose attempt's `finished` report is in the same window adds nothing
      // (the master accepts a result straight from DISPATCHED): settle it here, send only the result.
      const finishedIn = new Set(window.filter((r) => r.kind === 'finished').map((r) => r.attemptId));
      const superseded = (r: AttemptReport) => r.kind === 'running' && finishedIn.has(r.attemptId);
      const batch = window.filter((r) => !superseded(r));
      const settled = new Set(window.filter(superseded).map((r) => r.reportId));
      try {
        const ack = await this.opts.send(batch);
        for (const id of ack.acked) settled.add(id);
        for (const r of ack.rejected ?? []) {
          this.opts.logger?.warn(r, 'a master rejected an attempt report; dropping it');
          settled.add(r.reportId);
        }
      } catch (err) {
        this.opts.logger?.debug({ err, reports: batch.length }, 'attempt reports not delivered; will retry');
      }
      if (settled.size > 0) {
        for (const id of settled) this.unspooled.delete(id);
        await this.forgetSpooled(settled);
        // Only appends happened meanwhile, so the window is still the head of the queue.
        this.queue = [...window.filter((r) => !settled.has(r.reportId)), ...this.queue.slice(window.length)];
        this.delivered += settled.size;
      }
      if (window.every((r) => settled.has(r.reportId))) {
        this.failures = 0;
        continue;
      }
      this.failures += 1;
      await this.sleep(this.retryDelayMs());
    }
  }

  /**
   * Deletes acknowledged reports from the spool. A spool that cannot be changed keeps them (they
   * are sent again after a restart; the master acknowledges a duplicate and changes nothing):
   * never a reason to stop sending.
   */
  private async forgetSpooled(ids: Set<string>): Promise<void> {
    try {
      await this.opts.spool.acknowledge(ids);
      this.ackFailing = false;
    } catch (err) {
      if (this.ackFailing) return;
      this.ackFailing = true;
      this.opts.logger?.warn(
        { err, path: this.opts.spool.dir },
        `acknowledged attempt reports cannot be deleted from the spool ${this.opts.spool.dir}; they will be sent again after a restart (harmless duplicates). Make the directory writable`,
      );
    }
  }

  /** A write failed: log it once per failure (with what to do), expose it, keep retrying. */
  private spoolFailed(err: unknown, reports: number): void {
    const error = describeError(err);
    if (!this.spoolFailure) {
      this.spoolFailure = { since: new Date().toISOString(), error };
      const path = this.opts.spool.dir;
      this.opts.logger?.error(
        { err, path, code: (err as NodeJS.ErrnoException)?.code, reports, retryMs: this.spoolRetryMs },
        `attempt reports cannot be written to the spool ${path} (${error}): they are held in memory and sent to the masters anyway, but a stop or crash of this worker before a master acknowledges them loses them. Free disk space on, or make writable, ${path}; the write is retried every ${this.spoolRetryMs} ms`,
      );
      this.opts.onSpoolHealth?.(this.spoolHealth);
    } else {
      this.spoolFailure.error = error;
      this.opts.logger?.debug({ err, reports }, 'attempt reports still cannot be written to the spool');
    }
    this.retrySpoolSoon(this.spoolRetryMs);
  }

  /** Schedules a write of the held reports in `delayMs` (sooner than one already scheduled). */
  private retrySpoolSoon(delayMs: number): void {
    if (this.state !== 'running' || this.spoolRetry) return;
    if (this.spoolRetryTimer) {
      if (delayMs > 0) return;
      clearTimeout(this.spoolRetryTimer);
    }
    this.spoolRetryTimer = setTimeout(() => {
      this.spoolRetryTimer = null;
      this.spoolRetry = this.writeUnspooled().finally(() => {
        this.spoolRetry = null;
        if (this.spoolFailure) this.retrySpoolSoon(this.spoolRetryMs);
      });
    }, delayMs);
    this.spoolRetryTimer.unref();
  }

  /** Writes the reports held only in memory (those still unacknowledged) to the spool, in seq order. */
  private async writeUnspooled(): Promise<void> {
    const reports = [...this.unspooled.values()].sort((a, b) => a.seq - b.seq);
    try {
      // Nothing held (all acknowledged meanwhile): only whether the spool takes writes again.
      if (reports.length > 0) await this.opts.spool.append(reports);
      else await this.opts.spool.probe();
    } catch (err) {
      this.spoolFailed(err, reports.length);
      return;
    }
    // Acknowledged while being written: not to be sent again after a restart.
    const settledMeanwhile = new Set(
      reports.filter((r) => !this.unspooled.has(r.reportId)).map((r) => r.reportId),
    );
    for (const r of reports) this.unspooled.delete(r.reportId);
    if (settledMeanwhile.size > 0) await this.forgetSpooled(settledMeanwhile);
    if (this.unspooled.size > 0) return; // more failed meanwhile; written at the next retry
    if (this.spoolFailure) {
      const since = this.spoolFailure.since;
      this.spoolFailure = null;
      this.opts.logger?.info(
        { path: this.opts.spool.dir, reports: reports.length, since },
        `the report spool ${this.opts.spool.dir} is writable again; ${reports.length} report(s) held in memory are on disk now`,
      );
      this.opts.onSpoolHealth?.(this.spoolHealth);
    }
  }

  /** Exponential backoff with jitter: initial × factor^(failures−1), capped, ± jitter. */
  retryDelayMs(): number {
    const { initialMs, maxMs, factor, jitter } = this.backoff;
    const base = Math.min(maxMs, initialMs * factor ** Math.max(0, this.failures - 1));
    return Math.max(0, Math.round(base * (1 + jitter * (2 * this.random() - 1))));
  }

  private sleep(ms: number): Promise<void> {
    return new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, ms);
      this.cancelSleep = () => {
        clearTimeout(timer);
        resolve();
      };
    }).then(() => {
      this.cancelSleep = null;
    });
  }

  private notifyIdle(): void {
    if (this.pending > 0) return;
    const waiters = this.idleWaiters;
    this.idleWaiters = [];
    for (const w of waiters) w();
  }
}

function describeError(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/** A report's size as JSON: measured when it carries a long text, estimated otherwise (cheap). */
function reportBytes(r: AttemptReport): number {
  const long = (r.result?.logTail?.length ?? 0) + (r.result?.error?.length ?? 0);
  return long > 1024 ? Buffer.byteLength(JSON.stringify(r)) : 600 + long * 6;
}
