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
} as const satisfies Required<Pick<ReportSenderOptions, 'maxBatch' | 'maxBatchBytes' | 'backoff' | 'random'>>;

/**
 * Sends attempt reports to masters without losing any:
 *
 *   submit → spooled (group commit, fsync) → sent in seq order, batched → acked → removed
 *                                              ↘ failed → retried with exponential backoff
 *
 * On start, whatever a previous run left in the spool is replayed first. Only one batch is in
 * flight at a time, so reports of one attempt (running, then finished) arrive in order.
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
  private toWrite: { report: AttemptReport; resolve: () => void; reject: (e: unknown) => void }[] = [];
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

  constructor(private readonly opts: ReportSenderOptions) {
    const { backoff, maxBatch, maxBatchBytes, random } = withDefaults(opts, DEFAULT_REPORT_SENDER_OPTIONS);
    this.backoff = withDefaults(backoff, DEFAULT_REPORT_BACKOFF);
    this.maxBatch = maxBatch;
    this.maxBatchBytes = maxBatchBytes;
    this.random = random;
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

  /** Reports not yet acknowledged (spooled or about to be). */
  get pending(): number {
    return this.queue.length + this.toWrite.length + this.inWrite;
  }

  /** Reports acknowledged or rejected by a master since start. */
  get deliveredCount(): number {
    return this.delivered;
  }

  /** Spools a report; resolves once it is on disk (fsync'd). It is then sent until acknowledged. */
  submit(report: NewAttemptReport): Promise<void> {
    if (this.state !== 'running') {
      return Promise.reject(
        new SchedError('SENDER_STATE', `cannot submit a report: sender is ${this.state}`),
      );
    }
    this.seq += 1;
    const full: AttemptReport = { ...report, seq: this.seq };
    const durable = new Promise<void>((resolve, reject) =>
      this.toWrite.push({ report: full, resolve, reject }),
    );
    if (!this.writing) this.writing = this.groupCommit();
    return durable;
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
  }

  private async groupCommit(): Promise<void> {
    while (this.toWrite.length > 0) {
      const batch = this.toWrite;
      this.toWrite = [];
      this.inWrite = batch.length;
      try {
        await this.opts.spool.append(batch.map((b) => b.report));
        this.queue.push(...batch.map((b) => b.report));
        for (const b of batch) b.resolve();
        this.wakeIdle?.();
      } catch (err) {
        this.opts.logger?.error({ err }, 'could not write attempt reports to the spool');
        for (const b of batch) b.reject(err);
      } finally {
        this.inWrite = 0;
      }
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
        await this.opts.spool.acknowledge(settled);
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

/** A report's size as JSON: measured when it carries a long text, estimated otherwise (cheap). */
function reportBytes(r: AttemptReport): number {
  const long = (r.result?.logTail?.length ?? 0) + (r.result?.error?.length ?? 0);
  return long > 1024 ? Buffer.byteLength(JSON.stringify(r)) : 600 + long * 6;
}
