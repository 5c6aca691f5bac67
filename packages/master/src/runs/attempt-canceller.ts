import type { Logger } from '@sched/core';
import type { WorkerClient } from '../dispatch/worker-client.js';
import { MAX_PER_REVOKE, REVOKED_STATE } from './delivery-ledger.js';

/**
 * The attempt canceller: stops the in-flight attempts of runs whose cancel was requested
 * (docs/design.md#cancel), in the background, one job per worker incarnation, at most
 * {@link MAX_WORKERS_IN_FLIGHT} workers at once and {@link MAX_CANCELS_PER_WORKER} requests per
 * worker: a worker that does not answer delays only its own attempts, never the driver's batch
 * nor the other runs' cancels.
 *
 * It never decides that a run is cancelled. The driver ends a run `cancelled` only once none of
 * its attempts is `pending`, `dispatched` or `running` in PostgreSQL (`finishRuns` checks it), so
 * a run whose kill is not confirmed stays cancelling and is driven again (and its cancels sent
 * again) every `cancelRetryMs` until it is:
 *
 * | attempt row | request                | answer                                       | then                                     |
 * |-------------|------------------------|----------------------------------------------|------------------------------------------|
 * | running     | cancel                 | 200: the worker is killing it                | its `killed` report ends the row         |
 * | running     | cancel                 | 404 (not known there), or no answer          | sent again on the run's next drive; if the worker is gone, the leader's failover ends the row `failed-over` |
 * | dispatched  | revoke (at its seq)    | `revoked`: not there, and never starts there | ended `killed` here (fenced on worker, seq and owner) |
 * | dispatched  | revoke                 | its state there (it has it)                  | cancel, as a running one                 |
 * | dispatched  | revoke                 | no answer                                    | asked again on the run's next drive      |
 *
 * An attempt whose cancel is in flight is not sent another until that one is answered. Nothing
 * is sent while the lease is not valid.
 */

/** Worker incarnations being asked at once. */
export const MAX_WORKERS_IN_FLIGHT = 16;
/** Cancel requests in flight to one worker. */
export const MAX_CANCELS_PER_WORKER = 4;

/** An in-flight attempt of a run being cancelled, as its row names it. */
export interface CancelTarget {
  attemptId: number;
  runId: number;
  state: 'dispatched' | 'running';
  address: string;
  workerKey: string;
  /** The row's `dispatch_seq` (a revoke names it). */
  seq: number;
}

export interface AttemptCancellerOptions {
  client: Pick<WorkerClient, 'cancel' | 'revoke'>;
  /**
   * Ends as `killed` the attempts their worker revoked (`killRevokedAttempts`, fenced on the
   * worker key, the seq and this master owning the run); returns the ids it ended.
   */
  endRevoked: (list: { id: number; workerKey: string; dispatchSeq: number }[]) => Promise<number[]>;
  /** Drives runs again (an attempt of theirs ended). */
  wake: (runIds: number[]) => void;
  /** False while the registry lease is not valid: nothing is sent. */
  leaseValid: () => boolean;
  logger: Logger;
}

export class AttemptCanceller {
  /** Attempts whose cancel is queued or in flight. */
  private readonly active = new Set<number>();
  /** Attempts whose cancel failed and was logged at `warn` (the next failures log at `debug`). */
  private readonly warned = new Set<number>();
  private readonly jobs = new Set<Promise<void>>();
  private readonly waiting: (() => void)[] = [];
  private running = 0;

  constructor(private readonly opts: AttemptCancellerOptions) {}

  /** Starts cancelling `targets` (those not already being cancelled) without waiting. */
  cancel(targets: readonly CancelTarget[]): void {
    const byWorker = new Map<string, CancelTarget[]>();
    for (const t of targets) {
      if (this.active.has(t.attemptId)) continue;
      this.active.add(t.attemptId);
      const k = `${t.address} ${t.workerKey}`;
      byWorker.set(k, [...(byWorker.get(k) ?? []), t]);
    }
    for (const list of byWorker.values()) {
      const job = this.slot(() => this.cancelOnWorker(list))
        .catch((err) => this.opts.logger.warn({ err }, 'cancelling attempts failed; trying again shortly'))
        .finally(() => {
          for (const t of list) this.active.delete(t.attemptId);
          this.jobs.delete(job);
        });
      this.jobs.add(job);
    }
  }

  /** Waits for every cancel in flight (each ends within the worker client's request timeout). */
  async idle(): Promise<void> {
    while (this.jobs.size > 0) await Promise.all(this.jobs);
  }

  /** Runs `fn` once fewer than {@link MAX_WORKERS_IN_FLIGHT} workers are being asked. */
  private async slot(fn: () => Promise<void>): Promise<void> {
    // A finishing job hands its slot straight to the next waiting one.
    if (this.running >= MAX_WORKERS_IN_FLIGHT) await new Promise<void>((r) => this.waiting.push(r));
    else this.running += 1;
    try {
      await fn();
    } finally {
      const next = this.waiting.shift();
      if (next) next();
      else this.running -= 1;
    }
  }

  /** The attempts of one worker incarnation: revoke the dispatched ones, cancel the rest. */
  private async cancelOnWorker(list: CancelTarget[]): Promise<void> {
    if (!this.opts.leaseValid()) return;
    const { address, workerKey } = list[0] as CancelTarget;
    const toKill = list.filter((t) => t.state === 'running');
    const dispatched = list.filter((t) => t.state === 'dispatched');
    if (dispatched.length > 0) {
      const states = await this.revoke(address, workerKey, dispatched);
      if (states) {
        const revoked = dispatched.filter((t) => states.get(String(t.attemptId)) === REVOKED_STATE);
        // The worker has the others (queued, running or ended): they are cancelled like running ones.
        toKill.push(...dispatched.filter((t) => states.has(String(t.attemptId)) && !revoked.includes(t)));
        if (revoked.length > 0 && this.opts.leaseValid()) {
          const ended = new Set(
            await this.opts.endRevoked(
              revoked.map((t) => ({ id: t.attemptId, workerKey: t.workerKey, dispatchSeq: t.seq })),
            ),
          );
          const runs = revoked.filter((t) => ended.has(t.attemptId)).map((t) => t.runId);
          if (runs.length > 0) this.opts.wake([...new Set(runs)]);
        }
      }
    }
    for (let i = 0; i < toKill.length; i += MAX_CANCELS_PER_WORKER) {
      if (!this.opts.leaseValid()) return;
      await Promise.all(toKill.slice(i, i + MAX_CANCELS_PER_WORKER).map((t) => this.cancelOne(t)));
    }
  }

  /** Asks the worker to kill the attempt; a failure is logged, and the run's next drive asks again. */
  private async cancelOne(t: CancelTarget): Promise<void> {
    try {
      const known = await this.opts.client.cancel(t.address, String(t.attemptId), 'run cancelled');
      this.warned.delete(t.attemptId);
      if (!known) {
        this.opts.logger.debug(
          { attemptId: t.attemptId, worker: t.address },
          'the worker does not know the attempt of a cancelled run; waiting for its report or its failover',
        );
      }
    } catch (err) {
      this.failed(t, err);
    }
  }

  /** `revoke` on the worker: each attempt's state there, or `revoked`; null when it could not be asked. */
  private async revoke(
    address: string,
    workerKey: string,
    list: readonly CancelTarget[],
  ): Promise<Map<string, string> | null> {
    try {
      const states = new Map<string, string>();
      for (let i = 0; i < list.length; i += MAX_PER_REVOKE) {
        const chunk = list.slice(i, i + MAX_PER_REVOKE);
        const answer = await this.opts.client.revoke(
          address,
          workerKey,
          chunk.map((t) => ({ attemptId: String(t.attemptId), dispatchSeq: t.seq })),
        );
        for (const [id, state] of answer) states.set(id, state);
      }
      for (const t of list) this.warned.delete(t.attemptId);
      return states;
    } catch (err) {
      for (const t of list) this.failed(t, err);
      return null;
    }
  }

  private failed(t: CancelTarget, err: unknown): void {
    const first = !this.warned.has(t.attemptId);
    if (this.warned.size >= 10_000) this.warned.clear();
    this.warned.add(t.attemptId);
    const fields = { err, attemptId: t.attemptId, runId: t.runId, worker: t.address };
    const msg =
      'could not stop an attempt of a cancelled run; the run stays cancelling and the cancel is sent again until the attempt has ended';
    if (first) this.opts.logger.warn(fields, msg);
    else this.opts.logger.debug(fields, msg);
  }
}
