import { type Clock, type Logger, systemClock, type WithDefaults, withDefaults } from '@sched/core';
import { type Db, releaseQueuedRun } from '@sched/store';
import type pg from 'pg';
import type { WorkerClient } from '../dispatch/worker-client.js';
import type { WorkerRouter } from '../routing/worker-router.js';
import type { PreparedRuns, StagedRun } from '../scheduler/staged-runs.js';
import { AttemptCanceller, type CancelTarget } from './attempt-canceller.js';
import { DEFAULT_DELIVERY_LEDGER_OPTIONS, DeliveryLedger, ledgerStoreOf } from './delivery-ledger.js';
import { DispatchSender } from './dispatch-sender.js';
import {
  type DispatchJob,
  DispatchTargets,
  jobsOfInserted,
  type PlannedDispatch,
  type RegisteredWorker,
} from './dispatch-targets.js';
import {
  type DriveAttempt,
  type DriveRun,
  finishRuns,
  insertAttempts,
  killPendingAttempts,
  killRevokedAttempts,
  listOwnedActiveRuns,
  loadAttemptsOfRuns,
  loadRunsToDrive,
  markRunsRunning,
  reassignAttempt,
} from './run-drive-queries.js';
import { RunPlans } from './run-plans.js';

export type { RegisteredWorker } from './dispatch-targets.js';

/**
 * The run driver: drives every run this master owns, from the database alone. Owns the batch
 * loop (wake → load runs + attempts → plan → persist → send → finish), its wake-ups, sweep and
 * timers, and the pre-staged dispatch of fired runs (`prepareFired`). Where an attempt goes is
 * `dispatch-targets.ts`; sending and reading answers, `dispatch-sender.ts`; attempts whose
 * delivery is uncertain (the lost-answer protocol), `delivery-ledger.ts`.
 *
 * A run is "woken" when something may have changed for it (created, a report applied, a retry
 * came due, a cancel was requested, it was re-assigned to this master). Woken runs are driven in
 * batches: load runs + attempts, plan each with `planRun`, persist the dispatch intents in one
 * statement, send them to workers, and end finished runs. Every write is fenced on `owner = me`,
 * so a master that has lost a run changes nothing (docs/design.md#runs); nothing is driven or
 * sent while the lease is not valid.
 *
 * The first time this incarnation drives a run, attempts already `dispatched` are sent again
 * (dispatch is idempotent on the attempt id): the previous owner may have died between
 * persisting the intent and sending it. After `stop()` every run is driven as for the first time,
 * and so is every run of a batch whose drive failed (a statement whose reply was lost — the
 * INSERT of the dispatch intents, say — may have committed). Beyond those, an attempt still
 * `dispatched` after `dispatchTimeoutMs` without a report is sent again (the dispatch timeout,
 * docs/transport.md#dispatch-timeout): no attempt stays `dispatched` unsent, whatever lost it.
 *
 * A run whose cancel was requested is cancelled only once each of its in-flight attempts is
 * confirmed ended (docs/design.md#cancel): until then it stays cancelling, and its
 * attempts are stopped by the `AttemptCanceller` (in the background, concurrently for the runs of
 * a batch) and asked about again every `cancelRetryMs`.
 */

export interface RunDriverOptions {
  db: pg.Pool;
  /** This master's incarnation key (docs/design.md#identity): the `owner` of its runs. */
  nodeKey: string;
  router: WorkerRouter;
  /** Live workers from the registry (with their registration czxid, so the failover can fence on it). */
  workers: () => readonly RegisteredWorker[];
  client: WorkerClient;
  /** False while the registry lease is not valid: the driver then does nothing (self-fencing). */
  leaseValid: () => boolean;
  /** Wakes runs owned by other masters (released queued runs). */
  wakeElsewhere?: (runIds: number[]) => void;
  /** Told when a run this driver ended reaches its terminal state. */
  onRunEnded?: (runId: number, state: 'succeeded' | 'failed' | 'cancelled') => void;
  clock?: Clock;
  logger: Logger;
  /** Re-drive every owned active run this often (missed wake-ups, lost workers). @defaultValue 5000 */
  sweepIntervalMs?: number;
  /** Retry a task that found no worker after this long. @defaultValue 1000 */
  noWorkerRetryMs?: number;
  /** Ask a worker again about attempts whose dispatch answer was lost after this long. @defaultValue 2000 */
  unconfirmedRetryMs?: number;
  /** Runs per batch. @defaultValue 500 */
  batchSize?: number;
  /**
   * Send an attempt again when it has been `dispatched` this long without a `running` or final
   * report (and again after each further period while it stays so): the dispatch timeout.
   * @defaultValue {@link DISPATCH_TIMEOUT_MS}
   */
  dispatchTimeoutMs?: number;
  /** Drive a cancelling run (its attempts not confirmed ended yet) again after this long. @defaultValue 2000 */
  cancelRetryMs?: number;
}

/**
 * The dispatch timeout (docs/transport.md#dispatch-timeout): longer than a dispatch and its
 * `running` report take on a loaded cluster, short enough that an attempt whose send was lost
 * waits little. Not a setting: a re-send is idempotent, so the value trades only latency
 * against one duplicate dispatch per period for an attempt waiting in a worker's backlog.
 */
export const DISPATCH_TIMEOUT_MS = 30_000;

export const DEFAULT_RUN_DRIVER_OPTIONS = {
  sweepIntervalMs: 5_000,
  noWorkerRetryMs: 1_000,
  unconfirmedRetryMs: DEFAULT_DELIVERY_LEDGER_OPTIONS.retryMs,
  batchSize: 500,
  dispatchTimeoutMs: DISPATCH_TIMEOUT_MS,
  cancelRetryMs: 2_000,
} as const satisfies Required<
  Pick<
    RunDriverOptions,
    | 'sweepIntervalMs'
    | 'noWorkerRetryMs'
    | 'unconfirmedRetryMs'
    | 'batchSize'
    | 'dispatchTimeoutMs'
    | 'cancelRetryMs'
  >
>;

export class RunDriver {
  private readonly dirty = new Set<number>();
  private readonly seen = new Set<number>();
  private readonly timers = new Map<number, NodeJS.Timeout>();
  /** Attempt id → when (monotonic ms) the dispatch timeout last sent it again. */
  private readonly timedOut = new Map<number, number>();
  private readonly plans = new RunPlans();
  private readonly opts: WithDefaults<RunDriverOptions, typeof DEFAULT_RUN_DRIVER_OPTIONS>;
  private readonly clock: Clock;
  private readonly ledger: DeliveryLedger;
  private readonly sender: DispatchSender;
  private readonly canceller: AttemptCanceller;
  private loop: Promise<void> | null = null;
  private sweepTimer: NodeJS.Timeout | null = null;
  private started = false;

  constructor(options: RunDriverOptions) {
    const opts = withDefaults(options, DEFAULT_RUN_DRIVER_OPTIONS);
    this.opts = opts;
    this.clock = opts.clock ?? systemClock;
    const leaseValid = () => opts.leaseValid();
    this.ledger = new DeliveryLedger({
      store: ledgerStoreOf(opts.db, opts.nodeKey),
      workers: opts.client,
      leaseValid,
      wake: (runIds) => this.wake(runIds),
      logger: opts.logger,
      retryMs: opts.unconfirmedRetryMs,
    });
    this.sender = new DispatchSender({
      client: opts.client,
      router: opts.router,
      // Every move is fenced on the run's owner and the dispatch seq the mover knows.
      move: (id, from, to, fromSeq) =>
        reassignAttempt(opts.db, id, from, to, { fromSeq, owner: opts.nodeKey }),
      ledger: this.ledger,
      leaseValid,
      retryLater: (runId) => this.wakeLater(runId, this.opts.noWorkerRetryMs),
      logger: opts.logger,
    });
    this.canceller = new AttemptCanceller({
      client: opts.client,
      endRevoked: (list) => killRevokedAttempts(opts.db, opts.nodeKey, list),
      wake: (runIds) => this.wake(runIds),
      leaseValid,
      logger: opts.logger,
    });
  }

  async start(): Promise<void> {
    this.started = true;
    this.ledger.start();
    await this.sweep();
    this.sweepTimer = setInterval(() => {
      this.sweep().catch((err) => this.opts.logger.warn({ err }, 'run sweep failed'));
    }, this.opts.sweepIntervalMs);
    this.sweepTimer.unref();
  }

  /** Stops driving (self-fencing or shutdown); waits for the batch and the sends in flight. */
  async stop(): Promise<void> {
    this.started = false;
    if (this.sweepTimer) clearInterval(this.sweepTimer);
    this.ledger.stop();
    for (const t of this.timers.values()) clearTimeout(t);
    this.timers.clear();
    this.dirty.clear();
    await this.loop;
    await Promise.all([this.sender.idle(), this.canceller.idle()]);
    // After a restart (self-fencing ended) every run is driven as for the first time: its
    // `dispatched` attempts are sent again to their workers (idempotent, and moved only on their
    // word), so none that was held or undelivered before the stop is forgotten.
    this.ledger.clear();
    this.seen.clear();
    this.timedOut.clear();
  }

  /** Marks runs as possibly changed; they are driven soon. Unknown or foreign ids are harmless. */
  wake(runIds: Iterable<number>): void {
    if (!this.started) return;
    for (const id of runIds) this.dirty.add(id);
    this.kick();
  }

  /** Number of runs waiting to be driven (for metrics and tests). */
  get backlog(): number {
    return this.dirty.size;
  }

  private async sweep(): Promise<void> {
    if (!this.started || !this.opts.leaseValid()) return;
    this.wake(await listOwnedActiveRuns(this.opts.db, this.opts.nodeKey));
  }

  private kick(): void {
    if (this.loop || this.dirty.size === 0) return;
    this.loop = this.drain().finally(() => {
      this.loop = null;
      if (this.started && this.dirty.size > 0) this.kick();
    });
  }

  private async drain(): Promise<void> {
    while (this.started && this.dirty.size > 0) {
      if (!this.opts.leaseValid()) {
        // Not safe to act; the sweep re-wakes everything once the lease is valid again.
        this.dirty.clear();
        return;
      }
      const batch = [...this.dirty].slice(0, this.opts.batchSize);
      for (const id of batch) this.dirty.delete(id);
      try {
        await this.driveBatch(batch);
      } catch (err) {
        this.opts.logger.warn({ err, runs: batch.length }, 'driving runs failed; retrying shortly');
        for (const id of batch) {
          // A statement whose reply was lost may have committed (the INSERT of the dispatch
          // intents, a move): the next drive sends every `dispatched` attempt of these runs again,
          // as a first drive does (idempotent on the attempt id).
          this.seen.delete(id);
          this.wakeLater(id, this.opts.noWorkerRetryMs);
        }
      }
    }
  }

  private wakeLater(runId: number, delayMs: number): void {
    if (!this.started) return;
    const existing = this.timers.get(runId);
    if (existing) clearTimeout(existing);
    const t = setTimeout(
      () => {
        this.timers.delete(runId);
        this.wake([runId]);
      },
      Math.max(0, delayMs),
    );
    t.unref();
    this.timers.set(runId, t);
  }

  private async driveBatch(ids: number[]): Promise<void> {
    const { db, nodeKey } = this.opts;
    const runs = await loadRunsToDrive(db, nodeKey, ids);
    if (runs.length === 0) return;
    const attempts = await loadAttemptsOfRuns(
      db,
      runs.map((r) => r.id),
    );
    await this.plans.load(db, runs);

    const byRun = new Map<number, DriveAttempt[]>();
    for (const a of attempts) {
      const list = byRun.get(a.runId) ?? [];
      list.push(a);
      byRun.set(a.runId, list);
    }

    const now = this.clock.now();
    const mono = this.clock.monotonic();
    const targets = new DispatchTargets(this.opts.router, this.opts.workers());
    const newDispatches: PlannedDispatch[] = [];
    const resends: DispatchJob[] = [];
    const toStart: number[] = [];
    const toFinish: { id: number; state: 'succeeded' | 'failed' | 'cancelled' }[] = [];
    // Only workflows with concurrency `queue` can have queued runs to release when one ends.
    const queueing = new Set<number>();
    const cancelled: number[] = [];
    const toStop: CancelTarget[] = [];
    let timedOut = 0;
    for (const a of attempts) if (a.state !== 'dispatched') this.timedOut.delete(a.id);

    for (const run of runs) {
      const def = this.plans.definitionOf(run);
      if (!def) {
        this.opts.logger.error({ runId: run.id }, 'run refers to a definition version that does not exist');
        continue;
      }
      if (def.schedule?.concurrency === 'queue') queueing.add(run.workflowId);
      const runAttempts = byRun.get(run.id) ?? [];
      const firstTime = !this.seen.has(run.id);
      this.seen.add(run.id);

      if (run.cancelRequested) {
        cancelled.push(run.id);
        const inFlight = runAttempts.filter((a) => a.state === 'dispatched' || a.state === 'running');
        if (inFlight.length === 0) {
          toFinish.push({ id: run.id, state: 'cancelled' });
        } else {
          // Cancelled only once each one is confirmed ended: until then the run stays cancelling.
          toStop.push(...cancelTargetsOf(inFlight));
          this.wakeLater(run.id, this.opts.cancelRetryMs);
        }
        continue;
      }

      const { tasks, plan } = this.plans.plan(def, runAttempts, now);

      newDispatches.push(...targets.routeAll(run, def, tasks, plan.dispatch));
      // Attempts persisted without a worker, and dispatched ones on a first drive or after their
      // send failed (idempotent on the attempt id).
      const again = targets.resendsOf(run, def, tasks, runAttempts, (a) => {
        if (firstTime || this.ledger.takeUndelivered(a.id)) {
          // Sent again now: the dispatch timeout counts its next period from here.
          if (a.state === 'dispatched') this.timedOut.set(a.id, mono);
          return true;
        }
        if (!this.dispatchTimedOut(a, mono)) return false;
        timedOut++;
        return true;
      });
      resends.push(...again.jobs);
      if (again.unrouted) this.wakeLater(run.id, this.opts.noWorkerRetryMs);
      if (plan.outcome) toFinish.push({ id: run.id, state: plan.outcome });
      else if (run.state === 'pending') toStart.push(run.id);
      if (plan.wakeAt !== null) this.wakeLater(run.id, plan.wakeAt - now);
    }

    if (cancelled.length > 0) await killPendingAttempts(db, cancelled);
    // In the background, every run's at once: a worker that does not answer delays only its own.
    this.canceller.cancel(toStop);
    await markRunsRunning(db, nodeKey, toStart);
    if (timedOut > 0) {
      this.opts.logger.info(
        { attempts: timedOut, dispatchTimeoutMs: this.opts.dispatchTimeoutMs },
        'attempts dispatched for longer than the dispatch timeout without a report; sending them again (idempotent)',
      );
    }

    const jobs = [...resends, ...(await this.persistDispatches(db, newDispatches))];
    // The intents are persisted: sending can overlap with planning the next batch. A slow
    // worker then delays only its own attempts, not the whole driver.
    this.sender.sendInBackground(jobs);
    await this.sender.throttle();

    const ended = await finishRuns(db, nodeKey, toFinish);
    const endedIds = new Set(ended.map((r) => r.id));
    for (const r of toFinish) {
      if (endedIds.has(r.id)) {
        this.seen.delete(r.id);
        this.opts.onRunEnded?.(r.id, r.state);
      } else if (r.state === 'cancelled') {
        // An attempt of it went out meanwhile (a send in flight): stop it on the next drive.
        this.wakeLater(r.id, this.opts.cancelRetryMs);
      }
    }
    // (The firer's periodic queue sweep covers a workflow whose policy changed since.)
    await this.releaseQueues(ended.map((r) => r.workflowId).filter((wf) => queueing.has(wf)));
  }

  /**
   * Whether `a` is to be sent again by the dispatch timeout: `dispatched` for `dispatchTimeoutMs`
   * (by the database's clock) and not sent again by it for as long, and not held by the delivery
   * ledger (which asks its worker instead).
   */
  private dispatchTimedOut(a: DriveAttempt, mono: number): boolean {
    const timeout = this.opts.dispatchTimeoutMs;
    if (a.state !== 'dispatched' || a.dispatchedAgoMs === null || a.dispatchedAgoMs < timeout) return false;
    if (this.ledger.entry(a.id)?.kind === 'unconfirmed') return false;
    const last = this.timedOut.get(a.id);
    if (last !== undefined && mono - last < timeout) return false;
    if (this.timedOut.size >= 100_000) this.timedOut.clear(); // runs taken over by others leave entries
    this.timedOut.set(a.id, mono);
    return true;
  }

  /**
   * Inserts the planned attempts (fenced on this master owning their runs) and returns the jobs
   * for those that got a worker; the others are retried after `noWorkerRetryMs`.
   */
  private async persistDispatches(
    db: Db | pg.ClientBase,
    planned: PlannedDispatch[],
  ): Promise<DispatchJob[]> {
    const created = await insertAttempts(
      db,
      this.opts.nodeKey,
      planned.map((n) => n.d),
    );
    const { jobs, unrouted } = jobsOfInserted(planned, created);
    for (const runId of unrouted) this.wakeLater(runId, this.opts.noWorkerRetryMs);
    return jobs;
  }

  /**
   * Pre-staged dispatch (docs/scheduling.md#from-fire-to-start). Called by the firer inside its
   * pre-staged fire transaction, before the fire time, with the runs it inserted there: plans their
   * first tasks, routes them and inserts their attempts and the runs' `running` state in that same
   * transaction. Nothing is sent before it commits — `afterCommit` sends — so an attempt never
   * starts unless its run was committed; if it rolls back, the attempts vanish with the runs.
   * At the fire time only the commit and one request per worker are left.
   */
  async prepareFired(client: pg.ClientBase, staged: readonly StagedRun[]): Promise<PreparedRuns | null> {
    if (!this.started || !this.opts.leaseValid() || staged.length === 0) return null;
    const runs: DriveRun[] = staged.map((r) => ({
      id: r.runId,
      workflowId: r.workflowId,
      version: r.version,
      state: 'pending',
      fireTime: r.fireTimeMs === null ? null : new Date(r.fireTimeMs),
      params: r.params ?? {},
      cancelRequested: false,
    }));
    // Through the transaction's own connection: the pool may be taken by other pre-staged fires.
    await this.plans.load(client, runs);
    const targets = new DispatchTargets(this.opts.router, this.opts.workers());
    const planned: PlannedDispatch[] = [];
    const prepared = new Set<number>();
    for (const run of runs) {
      const def = this.plans.definitionOf(run);
      if (!def) continue;
      const fireMs = run.fireTime?.getTime() ?? this.clock.now();
      const { tasks, plan } = this.plans.plan(def, [], fireMs);
      if (plan.outcome !== null || plan.wakeAt !== null || plan.dispatch.length === 0) continue;
      const mine = targets.routeAll(run, def, tasks, plan.dispatch);
      // Only runs whose every first task has a worker now; the rest are driven after the commit.
      if (mine.some((m) => m.d.worker === null)) continue;
      planned.push(...mine);
      prepared.add(run.id);
    }
    if (prepared.size === 0) return null;
    await markRunsRunning(client, this.opts.nodeKey, [...prepared]);
    const jobs = await this.persistDispatches(client, planned);
    return {
      runIds: prepared,
      afterCommit: () => {
        if (!this.started) return; // stopped meanwhile: a later drive sends them (first drive resends)
        for (const id of prepared) this.seen.add(id);
        this.sender.sendInBackground(jobs);
      },
    };
  }

  private async releaseQueues(workflowIds: number[]): Promise<void> {
    const released: number[] = [];
    for (const wf of new Set(workflowIds)) {
      const id = await releaseQueuedRun(this.opts.db as Db, wf);
      if (id !== null) released.push(id);
    }
    if (released.length === 0) return;
    this.wake(released);
    this.opts.wakeElsewhere?.(released);
  }
}

/** The in-flight attempts of a cancelling run as the canceller takes them (those naming a worker). */
function cancelTargetsOf(attempts: readonly DriveAttempt[]): CancelTarget[] {
  const list: CancelTarget[] = [];
  for (const a of attempts) {
    if ((a.state !== 'dispatched' && a.state !== 'running') || !a.workerAddress || !a.workerKey) continue;
    list.push({
      attemptId: a.id,
      runId: a.runId,
      state: a.state,
      address: a.workerAddress,
      workerKey: a.workerKey,
      seq: a.dispatchSeq,
    });
  }
  return list;
}
