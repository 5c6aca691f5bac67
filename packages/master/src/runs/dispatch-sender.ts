import type { Logger } from '@sched/core';
import { type AttemptRequest, WireError } from '@sched/protocol';
import { attemptRequestOf } from '../dispatch/attempt-request.js';
import { type DispatchAnswer, type WorkerClient, WorkerUnreachableError } from '../dispatch/worker-client.js';
import type { WorkerRouter } from '../routing/worker-router.js';
import type { DeliveryLedger, DispatchOutcome, UncertainDelivery } from './delivery-ledger.js';
import {
  type AssignedJob,
  type DispatchJob,
  isAssigned,
  type MoveAttempt,
  moveToNext,
} from './dispatch-targets.js';

/**
 * The dispatch sender: sends jobs whose intent is persisted, one request per worker incarnation
 * and at most {@link MAX_PER_REQUEST} attempts each, in the background (at most
 * {@link MAX_SENDS_IN_FLIGHT} sends at once before the driver waits), and reads the answers: an
 * accepted attempt stays; one that may be on the worker is settled by the delivery ledger (asked
 * about, or held) before it goes anywhere else; one the worker cannot have moves to its next
 * fallback (fenced), or back to `pending` with none left.
 *
 * Nothing is sent while the lease is not valid: the jobs are left to the ledger as undelivered.
 * A send that fails with an error (the database, typically) leaves its rows as they are; its
 * attempts are sent again on their runs' next drive, to the worker their rows name.
 */

/** Sends in flight before the driver waits for one (a slow worker delays only its own attempts). */
const MAX_SENDS_IN_FLIGHT = 4;
/** Attempts per dispatch request: the worker's batch limit. */
const MAX_PER_REQUEST = 1000;

export interface DispatchSenderOptions {
  client: Pick<WorkerClient, 'dispatch'>;
  router: Pick<WorkerRouter, 'reportDispatchSuccess' | 'reportDispatchFailure'>;
  /** `reassignAttempt` fenced on this master owning the run and on the seq. */
  move: MoveAttempt;
  ledger: DeliveryLedger;
  /** False while the registry lease is not valid: nothing is sent. */
  leaseValid: () => boolean;
  /** Drives the run again after `noWorkerRetryMs` (an attempt went back to `pending`, or was not sent). */
  retryLater: (runId: number) => void;
  logger: Logger;
}

export class DispatchSender {
  private readonly sending = new Set<Promise<void>>();

  constructor(private readonly opts: DispatchSenderOptions) {}

  /** Sends without waiting (tracked until done); a failed send is retried on the run's next drive. */
  sendInBackground(jobs: DispatchJob[]): void {
    if (jobs.length === 0) return;
    const p = this.send(jobs)
      .catch((err) => {
        this.opts.logger.warn({ err }, 'sending dispatches failed; sending them again shortly');
        this.undelivered(jobs);
      })
      .finally(() => this.sending.delete(p));
    this.sending.add(p);
  }

  /** Waits for one send when {@link MAX_SENDS_IN_FLIGHT} are in flight. */
  async throttle(): Promise<void> {
    if (this.sending.size >= MAX_SENDS_IN_FLIGHT) await Promise.race(this.sending);
  }

  /** Waits for every send in flight. */
  async idle(): Promise<void> {
    await Promise.all(this.sending);
  }

  private undelivered(jobs: readonly DispatchJob[]): void {
    this.opts.ledger.markUndelivered(jobs.map((j) => j.attemptId));
    for (const j of jobs) this.opts.retryLater(j.run.id);
  }

  /** Sends in rounds: the attempts moved to a fallback in one round are sent in the next. */
  private async send(jobs: DispatchJob[]): Promise<void> {
    let round = jobs;
    while (round.length > 0) {
      const retry: DispatchJob[] = [];
      // A job whose row names no registration it may be sent to is moved to its first candidate first.
      const ready: AssignedJob[] = [];
      for (const job of round) {
        if (job.placement.kind === 'to-move' && !(await this.advance(job))) continue;
        if (isAssigned(job)) ready.push(job);
      }
      const groups = groupByWorker(ready);
      if (!this.opts.leaseValid()) {
        // Fenced meanwhile: send nothing; the rows stay as they are for whoever drives them next.
        this.opts.ledger.markUndelivered(ready.map((j) => j.attemptId));
        return;
      }
      const settled = await Promise.allSettled(groups.map((g) => this.sendGroup(g.address, g.list, retry)));
      // A group that failed (the database, typically) leaves its rows as they were: its attempts
      // are sent again on their runs' next drive (to the worker their rows name).
      for (const [i, r] of settled.entries()) {
        if (r.status === 'fulfilled') continue;
        const list = groups[i]?.list ?? [];
        this.opts.logger.warn(
          { err: r.reason, attempts: list.length },
          'sending dispatches failed; sending them again shortly',
        );
        this.undelivered(list);
      }
      round = retry;
    }
  }

  /** One request to one worker incarnation; the jobs to send again (moved to a fallback) go to `retry`. */
  private async sendGroup(address: string, list: AssignedJob[], retry: DispatchJob[]): Promise<void> {
    const { client, router, ledger, logger } = this.opts;
    let answers: DispatchAnswer[] | null = null;
    // The request may have reached the worker although its answer did not reach us.
    let lostAnswer = false;
    try {
      answers = await client.dispatch(address, list.map(requestOf));
    } catch (err) {
      lostAnswer = !(err instanceof WorkerUnreachableError) || err.maybeDelivered;
      logger.warn(
        { err, worker: address, attempts: list.length },
        lostAnswer
          ? 'dispatch failed after the request was sent; asking the worker before the attempts go elsewhere'
          : 'dispatch failed',
      );
    }
    const toConfirm: AssignedJob[] = [];
    const wrongRegistration: { attemptId: number; czxid: string }[] = [];
    for (const [i, job] of list.entries()) {
      const { target, copyMayBeThere } = job.placement;
      const outcome = outcomeOf(answers?.[i], lostAnswer);
      if (outcome.kind === 'taken') {
        router.reportDispatchSuccess(target.key);
        continue;
      }
      router.reportDispatchFailure(target.key);
      if (outcome.kind === 'refused' && outcome.code === WireError.WrongRegistration) {
        wrongRegistration.push({ attemptId: job.attemptId, czxid: String(target.czxid) });
      }
      const verdict = ledger.afterDispatch(uncertainOf(job), outcome, copyMayBeThere);
      if (verdict === 'ask') toConfirm.push(job);
      else if (verdict === 'free' || verdict === 'revoked') {
        if (await this.advance(job)) retry.push(job);
      }
    }
    if (wrongRegistration.length > 0) {
      logger.warn(
        {
          worker: address,
          attempts: wrongRegistration.map((x) => x.attemptId),
          registrations: [...new Set(wrongRegistration.map((x) => x.czxid))],
        },
        'the worker is on another registration than the attempts were dispatched to (this master’s view of the workers lags); not started there',
      );
    }
    if (toConfirm.length === 0) return;
    const workerKey = toConfirm[0]?.placement.target.key as string;
    const verdicts = await ledger.confirm(address, workerKey, toConfirm.map(uncertainOf));
    for (const job of toConfirm) {
      if (verdicts.get(job.attemptId) === 'confirmed-has-it')
        router.reportDispatchSuccess(job.placement.target.key);
    }
    for (const job of toConfirm) {
      if (verdicts.get(job.attemptId) === 'revoked' && (await this.advance(job))) retry.push(job);
    }
  }

  /** Moves the job to its next candidate (true: send it there); back to `pending`: its run is retried later. */
  private async advance(job: DispatchJob): Promise<boolean> {
    const result = await moveToNext(job, this.opts.move);
    if (result === 'pending') this.opts.retryLater(job.run.id);
    return result === 'assigned';
  }
}

/** One group per worker incarnation (an address may have changed hands), at most MAX_PER_REQUEST each. */
function groupByWorker(jobs: readonly AssignedJob[]): { address: string; list: AssignedJob[] }[] {
  const groups: { address: string; list: AssignedJob[] }[] = [];
  const byWorker = new Map<string, AssignedJob[]>();
  for (const job of jobs) {
    const { address, key } = job.placement.target;
    const k = `${address} ${key}`;
    let list = byWorker.get(k);
    if (!list || list.length >= MAX_PER_REQUEST) {
      list = [];
      byWorker.set(k, list);
      groups.push({ address, list });
    }
    list.push(job);
  }
  return groups;
}

function requestOf(job: AssignedJob): AttemptRequest {
  const { target } = job.placement;
  return attemptRequestOf(
    {
      attemptId: job.attemptId,
      runId: job.run.id,
      taskName: job.taskName,
      attempt: job.attempt,
      shardIndex: job.shardIndex,
      shardTotal: job.shardTotal,
      fireTime: job.run.fireTime,
      workerKey: target.key,
      workerCzxid: target.czxid,
      dispatchSeq: job.seq,
    },
    job.task,
    // Workflow defaults < the run's params (a trigger's) < the task's own.
    { ...job.run.workflowParams, ...job.run.params, ...job.task.params },
  );
}

/** The worker's answer for one attempt (`answer-lost`: the request was written, the answer never came). */
function outcomeOf(answer: DispatchAnswer | undefined, lostAnswer: boolean): DispatchOutcome {
  if (answer?.outcome === 'accepted' || answer?.outcome === 'duplicate') return { kind: 'taken' };
  if (lostAnswer) return { kind: 'answer-lost' };
  if (answer?.outcome === 'refused') return { kind: 'refused', code: answer.code };
  return { kind: 'not-sent' };
}

function uncertainOf(job: AssignedJob): UncertainDelivery {
  const { address, key } = job.placement.target;
  return { attemptId: job.attemptId, runId: job.run.id, address, workerKey: key, seq: job.seq };
}
