import { type Clock, type Logger, systemClock } from '@sched/core';
import { WireError } from '@sched/protocol';
import { type Db, releaseQueuedRun, type TaskDefinition, type WorkflowDefinition } from '@sched/store';
import type pg from 'pg';
import { attemptRequestOf } from '../dispatch/attempt-request.js';
import { type DispatchAnswer, type WorkerClient, WorkerUnreachableError } from '../dispatch/worker-client.js';
import type { WorkerRouter } from '../routing/worker-router.js';
import type { WorkerView } from '../routing/worker-view.js';
import type { PreparedRuns, StagedRun } from '../scheduler/schedule-firer.js';
import { type AttemptView, type PlannedTask, planRun } from './dag-planner.js';
import {
  type DispatchTarget,
  type DriveAttempt,
  type DriveRun,
  definitionKey,
  finishRuns,
  insertAttempts,
  killPendingAttempts,
  listOwnedActiveRuns,
  loadAttemptsOfRuns,
  loadDefinitions,
  loadRunsToDrive,
  markRunsRunning,
  type NewDispatch,
  reassignAttempt,
  stillDispatched,
} from './run-drive-queries.js';

/**
 * The run driver: drives every run this master owns, from the database alone.
 *
 * A run is "woken" when something may have changed for it (created, a report applied, a retry
 * came due, a cancel was requested, it was re-assigned to this master). Woken runs are driven in
 * batches: load runs + attempts, plan each with `planRun`, persist the dispatch intents in one
 * statement, send them to workers grouped per worker, and end finished runs. Every write is
 * fenced on `owner = me`, so a master that has lost a run changes nothing (docs/design.md#runs).
 *
 * The first time this incarnation drives a run, attempts already `dispatched` are sent again
 * (dispatch is idempotent on the attempt id): the previous owner may have died between
 * persisting the intent and sending it.
 *
 * Every dispatch records the worker's registration (the czxid of its znode) next to its key. A
 * worker that lost its session and came back keeps its key but has a new registration; the
 * leader's failover of the old one leaves attempts of the new one alone (docs/failover.md). So
 * an attempt is only ever sent to the registration recorded on its row: one recorded for a
 * registration that is gone is moved to the current one first (fenced), then sent. The dispatch
 * names that registration, and the worker refuses it (`WRONG_REGISTRATION`) if it is on another
 * one: a master whose view of the workers lags cannot start work the leader fails over.
 */

/** A live worker as the driver gets it: the router's view plus, when known, its registration. */
export type RegisteredWorker = WorkerView & {
  /** czxid of the worker's registration znode (`MembersView` member `czxid`). */
  czxid?: bigint;
};

export interface RunDriverOptions {
  db: pg.Pool;
  /** This master's incarnation key (the `owner` of its runs). */
  owner: string;
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
}

type Target = DispatchTarget;

/** A new attempt as planned: its row, its run and task, and the workers to try after the first. */
interface PlannedDispatch {
  d: NewDispatch;
  run: DriveRun;
  task: TaskDefinition;
  fallbacks: Target[];
}

interface PendingSend {
  attemptId: number;
  run: DriveRun;
  task: TaskDefinition;
  taskName: string;
  attempt: number;
  shardIndex: number;
  shardTotal: number;
  /**
   * Worker it is assigned to now, then the fallbacks in order. An empty target (key '') means
   * "not assigned to a sendable registration yet": it is moved to its first fallback, fenced on
   * `assignedKey` (the worker key its row has now), before anything is sent.
   */
  target: Target;
  fallbacks: Target[];
  assignedKey?: string | null;
  /** The row's `dispatch_seq` for the current target (sent with the dispatch and any revoke). */
  seq: number;
  /**
   * The current target may already hold a copy of this attempt: a resend of a row dispatched to it
   * (an earlier owner's request, or one whose answer was lost). Moving it away from that worker
   * then needs the worker's word first (`revoke`), or its failover.
   */
  mayHave: boolean;
}

/** An attempt whose delivery could not be confirmed either way: it stays with its worker until it can. */
interface Unconfirmed {
  attemptId: number;
  runId: number;
  address: string;
  workerKey: string;
  seq: number;
}

const MAX_SENDS_IN_FLIGHT = 4;
/** Attempts per dispatch or revoke request: the worker's batch limit. */
const MAX_PER_REQUEST = 1000;

export class RunDriver {
  private readonly dirty = new Set<number>();
  private readonly seen = new Set<number>();
  private readonly timers = new Map<number, NodeJS.Timeout>();
  private readonly definitions = new Map<string, WorkflowDefinition>();
  private readonly clock: Clock;
  private readonly batchSize: number;
  private loop: Promise<void> | null = null;
  /** Dispatches in flight: the next batch is planned while workers answer (bounded). */
  private readonly sending = new Set<Promise<void>>();
  /** Dispatched attempts whose delivery failed with an error: sent again on the run's next drive. */
  private readonly undelivered = new Set<number>();
  /** Attempts kept with their worker until it answers whether it has them (see `confirmOrHold`). */
  private readonly unconfirmed = new Map<number, Unconfirmed>();
  private unconfirmedTimer: NodeJS.Timeout | null = null;
  private sweepTimer: NodeJS.Timeout | null = null;
  private started = false;

  constructor(private readonly opts: RunDriverOptions) {
    this.clock = opts.clock ?? systemClock;
    this.batchSize = opts.batchSize ?? 500;
  }

  async start(): Promise<void> {
    this.started = true;
    await this.sweep();
    const every = this.opts.sweepIntervalMs ?? 5_000;
    this.sweepTimer = setInterval(() => {
      this.sweep().catch((err) => this.opts.logger.warn({ err }, 'run sweep failed'));
    }, every);
    this.sweepTimer.unref();
  }

  /** Stops driving (self-fencing or shutdown); waits for the batch in flight. */
  async stop(): Promise<void> {
    this.started = false;
    if (this.sweepTimer) clearInterval(this.sweepTimer);
    if (this.unconfirmedTimer) clearTimeout(this.unconfirmedTimer);
    this.unconfirmedTimer = null;
    for (const t of this.timers.values()) clearTimeout(t);
    this.timers.clear();
    this.dirty.clear();
    await this.loop;
    await Promise.all(this.sending);
    // After a restart (self-fencing ended) every run is driven as for the first time: its
    // `dispatched` attempts are sent again to their workers (idempotent, and moved only on their
    // word), so none that was held or undelivered before the stop is forgotten.
    this.unconfirmed.clear();
    this.seen.clear();
    this.undelivered.clear();
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
    this.wake(await listOwnedActiveRuns(this.opts.db, this.opts.owner));
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
      const batch = [...this.dirty].slice(0, this.batchSize);
      for (const id of batch) this.dirty.delete(id);
      try {
        await this.driveBatch(batch);
      } catch (err) {
        this.opts.logger.warn({ err, runs: batch.length }, 'driving runs failed; retrying shortly');
        for (const id of batch) this.wakeLater(id, this.opts.noWorkerRetryMs ?? 1_000);
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
    const { db, owner } = this.opts;
    const runs = await loadRunsToDrive(db, owner, ids);
    if (runs.length === 0) return;
    const attempts = await loadAttemptsOfRuns(
      db,
      runs.map((r) => r.id),
    );
    await this.ensureDefinitions(runs);

    const byRun = new Map<number, DriveAttempt[]>();
    for (const a of attempts) {
      const list = byRun.get(a.runId) ?? [];
      list.push(a);
      byRun.set(a.runId, list);
    }

    const now = this.clock.now();
    const workers = this.opts.workers();
    const targetOf = this.targets(workers);
    const newDispatches: PlannedDispatch[] = [];
    const resends: PendingSend[] = [];
    const toStart: number[] = [];
    const toFinish: { id: number; state: 'succeeded' | 'failed' | 'cancelled' }[] = [];
    // Only workflows with concurrency `queue` can have queued runs to release when one ends.
    const queueing = new Set<number>();
    const cancelled: number[] = [];

    for (const run of runs) {
      const def = this.definitions.get(definitionKey(run.workflowId, run.version));
      if (!def) {
        this.opts.logger.error({ runId: run.id }, 'run refers to a definition version that does not exist');
        continue;
      }
      if (def.schedule?.concurrency === 'queue') queueing.add(run.workflowId);
      const runAttempts = byRun.get(run.id) ?? [];
      const firstTime = !this.seen.has(run.id);
      this.seen.add(run.id);

      if (run.cancelRequested) {
        await this.cancelAttempts(runAttempts);
        cancelled.push(run.id);
        toFinish.push({ id: run.id, state: 'cancelled' });
        continue;
      }

      const tasks = new Map(def.tasks.map((t) => [t.name, t]));
      const plan = planRun(def.tasks.map(toPlannedTask), runAttempts.map(toAttemptView), now);

      for (const action of plan.dispatch) {
        const task = tasks.get(action.taskName) as TaskDefinition;
        for (const d of this.route(run, def, task, action, workers, targetOf)) newDispatches.push(d);
      }
      // Attempts persisted without a worker (none was free) or, on a first drive, already dispatched.
      for (const a of runAttempts) {
        const task = tasks.get(a.taskName);
        if (!task) continue;
        const resend = firstTime || this.undelivered.delete(a.id);
        if (a.state === 'pending' || (resend && a.state === 'dispatched' && a.workerKey)) {
          const send = this.resendOf(run, def, task, a, workers, targetOf);
          if (send) resends.push(send);
          else if (a.state === 'pending') this.wakeLater(run.id, this.opts.noWorkerRetryMs ?? 1_000);
        }
      }
      if (plan.outcome) toFinish.push({ id: run.id, state: plan.outcome });
      else if (run.state === 'pending') toStart.push(run.id);
      if (plan.wakeAt !== null) this.wakeLater(run.id, plan.wakeAt - now);
    }

    if (cancelled.length > 0) await killPendingAttempts(db, cancelled);
    await markRunsRunning(db, owner, toStart);

    const sends: PendingSend[] = [...resends, ...(await this.persistDispatches(db, newDispatches))];
    // The intents are persisted: sending can overlap with planning the next batch. A slow
    // worker then delays only its own attempts, not the whole driver.
    this.sendInBackground(sends);
    if (this.sending.size >= MAX_SENDS_IN_FLIGHT) await Promise.race(this.sending);

    const ended = await finishRuns(db, owner, toFinish);
    for (const r of toFinish) {
      this.seen.delete(r.id);
      this.opts.onRunEnded?.(r.id, r.state);
    }
    // (The firer's periodic queue sweep covers a workflow whose policy changed since.)
    await this.releaseQueues(ended.filter((wf) => queueing.has(wf)));
  }

  /**
   * Inserts the planned attempts (fenced on this master owning their runs) and returns the sends
   * for those that got a worker; the others are retried after `noWorkerRetryMs`.
   */
  private async persistDispatches(
    db: Db | pg.ClientBase,
    planned: PlannedDispatch[],
  ): Promise<PendingSend[]> {
    const created = await insertAttempts(
      db,
      this.opts.owner,
      planned.map((n) => n.d),
    );
    const byKey = new Map(planned.map((n) => [attemptKey(n.d), n]));
    const sends: PendingSend[] = [];
    for (const c of created) {
      const n = byKey.get(attemptKey(c));
      if (!n) continue;
      if (!n.d.worker) {
        this.wakeLater(c.runId, this.opts.noWorkerRetryMs ?? 1_000);
        continue;
      }
      sends.push({
        attemptId: c.id,
        run: n.run,
        task: n.task,
        taskName: c.taskName,
        attempt: c.attempt,
        shardIndex: c.shardIndex,
        shardTotal: n.d.shardTotal,
        target: n.d.worker,
        fallbacks: n.fallbacks,
        seq: c.dispatchSeq,
        mayHave: false,
      });
    }
    return sends;
  }

  /** Sends without waiting (tracked in `sending`); a failed send is retried on the run's next drive. */
  private sendInBackground(sends: PendingSend[]): void {
    if (sends.length === 0) return;
    const p = this.send(sends)
      .catch((err) => {
        this.opts.logger.warn({ err }, 'sending dispatches failed; sending them again shortly');
        for (const x of sends) {
          this.undelivered.add(x.attemptId);
          this.wakeLater(x.run.id, this.opts.noWorkerRetryMs ?? 1_000);
        }
      })
      .finally(() => this.sending.delete(p));
    this.sending.add(p);
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
      fireTime: new Date(r.fireTimeMs),
      params: {},
      cancelRequested: false,
    }));
    // Through the transaction's own connection: the pool may be taken by other pre-staged fires.
    await this.ensureDefinitions(runs, client);
    const workers = this.opts.workers();
    const targetOf = this.targets(workers);
    const planned: PlannedDispatch[] = [];
    const prepared = new Set<number>();
    for (const run of runs) {
      const def = this.definitions.get(definitionKey(run.workflowId, run.version));
      if (!def) continue;
      const fireMs = run.fireTime?.getTime() ?? this.clock.now();
      const plan = planRun(def.tasks.map(toPlannedTask), [], fireMs);
      if (plan.outcome !== null || plan.wakeAt !== null || plan.dispatch.length === 0) continue;
      const tasks = new Map(def.tasks.map((t) => [t.name, t]));
      const mine: PlannedDispatch[] = [];
      for (const action of plan.dispatch) {
        const task = tasks.get(action.taskName) as TaskDefinition;
        mine.push(...this.route(run, def, task, action, workers, targetOf));
      }
      // Only runs whose every first task has a worker now; the rest are driven after the commit.
      if (mine.some((m) => m.d.worker === null)) continue;
      planned.push(...mine);
      prepared.add(run.id);
    }
    if (prepared.size === 0) return null;
    await markRunsRunning(client, this.opts.owner, [...prepared]);
    const sends = await this.persistDispatches(client, planned);
    return {
      runIds: prepared,
      afterCommit: () => {
        if (!this.started) return; // stopped meanwhile: a later drive sends them (first drive resends)
        for (const id of prepared) this.seen.add(id);
        this.sendInBackground(sends);
      },
    };
  }

  private targets(workers: readonly RegisteredWorker[]): (w: WorkerView) => Target {
    const registrations = new Map(workers.map((w) => [w.key, w.czxid ?? null]));
    return (w) => ({
      address: w.address,
      startTime: w.startTime,
      key: w.key,
      czxid: registrations.get(w.key) ?? null,
    });
  }

  /** Loads the definitions of `runs` not cached yet, through `db` (the pool unless given a client). */
  private async ensureDefinitions(runs: DriveRun[], db: Db | pg.ClientBase = this.opts.db): Promise<void> {
    const missing = runs.filter((r) => !this.definitions.has(definitionKey(r.workflowId, r.version)));
    if (missing.length === 0) return;
    const loaded = await loadDefinitions(
      db,
      missing.map((r) => ({ workflowId: r.workflowId, version: r.version })),
    );
    for (const [k, v] of loaded) this.definitions.set(k, v);
  }

  /** New attempt rows for one planned dispatch (one per shard for sharding-broadcast). */
  private route(
    run: DriveRun,
    def: WorkflowDefinition,
    task: TaskDefinition,
    action: { taskName: string; attempt: number; shard?: { index: number; total: number } },
    workers: readonly WorkerView[],
    target: (w: WorkerView) => Target,
  ): PlannedDispatch[] {
    const base = { runId: run.id, taskName: task.name, attempt: action.attempt };
    const plan = this.opts.router.route(workers, {
      strategy: task.routing,
      group: task.workerGroup,
      scope: `${def.name}/${task.name}`,
    });
    if (plan.mode === 'broadcast') {
      if (action.shard) {
        // Re-dispatch of one shard: any worker of the group, the shard's own position first.
        const list = plan.shards.map((s) => target(s.worker));
        const start = list.length === 0 ? 0 : action.shard.index % list.length;
        const ordered = [...list.slice(start), ...list.slice(0, start)];
        return [
          {
            d: {
              ...base,
              shardIndex: action.shard.index,
              shardTotal: action.shard.total,
              worker: ordered[0] ?? null,
            },
            run,
            task,
            fallbacks: ordered.slice(1),
          },
        ];
      }
      if (plan.shards.length === 0) {
        return [{ d: { ...base, shardIndex: 0, shardTotal: 1, worker: null }, run, task, fallbacks: [] }];
      }
      // Broadcast: each shard belongs to its worker; no fallback (it would run two shards on one worker).
      return plan.shards.map((s) => ({
        d: { ...base, shardIndex: s.shardIndex, shardTotal: s.shardTotal, worker: target(s.worker) },
        run,
        task,
        fallbacks: [],
      }));
    }
    const targets = plan.targets.map(target);
    const shard = action.shard ?? { index: 0, total: 1 };
    return [
      {
        d: { ...base, shardIndex: shard.index, shardTotal: shard.total, worker: targets[0] ?? null },
        run,
        task,
        fallbacks: targets.slice(1),
      },
    ];
  }

  private resendOf(
    run: DriveRun,
    def: WorkflowDefinition,
    task: TaskDefinition,
    a: DriveAttempt,
    workers: readonly WorkerView[],
    target: (w: WorkerView) => Target,
  ): PendingSend | null {
    const common = {
      attemptId: a.id,
      run,
      task,
      taskName: a.taskName,
      attempt: a.attempt,
      shardIndex: a.shardIndex,
      shardTotal: a.shardTotal,
    };
    if (a.state === 'dispatched' && a.workerKey && a.workerAddress) {
      const w = workers.find((x) => x.key === a.workerKey);
      // A worker that is gone is the failover coordinator's business, not the driver's.
      if (!w) return null;
      const now = target(w);
      if (a.workerCzxid !== null && now.czxid !== null && now.czxid !== a.workerCzxid) {
        // Same incarnation, new registration (it lost its session and came back). Sent as it
        // is, the attempt would run under the new registration while the leader's failover of
        // the old one (which it belongs to on its row) may take it over: move it first.
        return {
          ...common,
          target: UNASSIGNED,
          fallbacks: [now],
          assignedKey: a.workerKey,
          seq: a.dispatchSeq,
          mayHave: true,
        };
      }
      // Sent for the registration its row records (the worker refuses it if it is on another one
      // now), even when this master's view does not know that registration.
      return {
        ...common,
        target: { ...now, czxid: a.workerCzxid },
        fallbacks: [],
        seq: a.dispatchSeq,
        mayHave: true,
      };
    }
    const [first] = this.route(
      run,
      def,
      task,
      { taskName: a.taskName, attempt: a.attempt, shard: { index: a.shardIndex, total: a.shardTotal } },
      workers,
      target,
    );
    if (!first?.d.worker) return null;
    return {
      ...common,
      target: UNASSIGNED,
      fallbacks: [first.d.worker, ...first.fallbacks],
      assignedKey: null,
      seq: a.dispatchSeq,
      mayHave: false,
    };
  }

  /**
   * Sends attempts grouped per worker. A refused or undeliverable attempt moves to its next
   * fallback (fenced on the worker it had); with none left it goes back to `pending`.
   */
  private async send(sends: PendingSend[]): Promise<void> {
    let round = sends;
    while (round.length > 0) {
      const retry: PendingSend[] = [];
      // A resend of a pending attempt (or of one recorded for a gone registration) has an empty
      // target: move it to its first fallback first.
      const ready: PendingSend[] = [];
      for (const s of round) {
        if (s.target.key === '') {
          if (await this.moveToNext(s, s.assignedKey ?? null)) ready.push(s);
        } else ready.push(s);
      }
      // One request per worker incarnation (an address may have changed hands), at most
      // MAX_PER_REQUEST attempts each (the worker's batch limit).
      const groups: { address: string; list: PendingSend[] }[] = [];
      const byWorker = new Map<string, PendingSend[]>();
      for (const s of ready) {
        const k = `${s.target.address} ${s.target.key}`;
        let list = byWorker.get(k);
        if (!list || list.length >= MAX_PER_REQUEST) {
          list = [];
          byWorker.set(k, list);
          groups.push({ address: s.target.address, list });
        }
        list.push(s);
      }
      if (!this.opts.leaseValid()) {
        // Fenced meanwhile: send nothing; the rows stay as they are for whoever drives them next.
        for (const { list } of groups) for (const s of list) this.undelivered.add(s.attemptId);
        return;
      }
      const settled = await Promise.allSettled(
        groups.map(async ({ address, list }) => {
          const requests = list.map((s) =>
            attemptRequestOf(
              {
                attemptId: s.attemptId,
                runId: s.run.id,
                taskName: s.taskName,
                attempt: s.attempt,
                shardIndex: s.shardIndex,
                shardTotal: s.shardTotal,
                fireTime: s.run.fireTime,
                workerKey: s.target.key,
                workerCzxid: s.target.czxid,
                dispatchSeq: s.seq,
              },
              s.task,
              { ...s.run.params, ...s.task.params },
            ),
          );
          let answers: DispatchAnswer[] | null = null;
          // The request may have reached the worker although its answer did not reach us.
          let lostAnswer = false;
          try {
            answers = await this.opts.client.dispatch(address, requests);
          } catch (err) {
            lostAnswer = !(err instanceof WorkerUnreachableError) || err.maybeDelivered;
            this.opts.logger.warn(
              { err, worker: address, attempts: list.length },
              lostAnswer
                ? 'dispatch failed after the request was sent; asking the worker before the attempts go elsewhere'
                : 'dispatch failed',
            );
          }
          const toConfirm: PendingSend[] = [];
          const wrongRegistration: PendingSend[] = [];
          for (const [i, s] of list.entries()) {
            const answer = answers?.[i];
            if (answer?.outcome === 'accepted' || answer?.outcome === 'duplicate') {
              this.opts.router.reportDispatchSuccess(s.target.key);
              continue;
            }
            this.opts.router.reportDispatchFailure(s.target.key);
            const code = answer?.outcome === 'refused' ? answer.code : null;
            if (code === WireError.WrongRegistration) wrongRegistration.push(s);
            // Another incarnation at the address, or this one on another registration (the view lags).
            const notForThisOne = code === WireError.WrongIncarnation || code === WireError.WrongRegistration;
            if (lostAnswer || (s.mayHave && code !== WireError.AttemptRevoked)) {
              // A copy may be there (or on its way): never give it to a second worker unasked. A
              // different incarnation at the address cannot answer for the one we sent it to, and
              // the failover of the registration the row records may take it over first: held
              // (dropped if it does, the worker asked again later otherwise).
              if (notForThisOne) this.hold(s, address);
              else toConfirm.push(s);
            } else if (await this.moveToNext(s, s.target.key)) retry.push(s);
          }
          if (wrongRegistration.length > 0) {
            this.opts.logger.warn(
              {
                worker: address,
                attempts: wrongRegistration.map((s) => s.attemptId),
                registrations: [...new Set(wrongRegistration.map((s) => String(s.target.czxid)))],
              },
              'the worker is on another registration than the attempts were dispatched to (this master’s view of the workers lags); not started there',
            );
          }
          for (const s of await this.confirmOrHold(address, toConfirm)) {
            if (await this.moveToNext(s, s.target.key)) retry.push(s);
          }
        }),
      );
      // A group that failed (the database, typically) leaves its rows as they were: its attempts
      // are sent again on their runs' next drive (to the worker their rows name).
      for (const [i, r] of settled.entries()) {
        if (r.status === 'fulfilled') continue;
        const list = groups[i]?.list ?? [];
        this.opts.logger.warn(
          { err: r.reason, attempts: list.length },
          'sending dispatches failed; sending them again shortly',
        );
        for (const x of list) {
          this.undelivered.add(x.attemptId);
          this.wakeLater(x.run.id, this.opts.noWorkerRetryMs ?? 1_000);
        }
      }
      round = retry;
    }
  }

  /**
   * Asks the worker (one request) whether it has the attempts whose delivery is uncertain, and
   * makes it refuse every copy of those it does not have (`revoke`, up to their dispatch seq).
   * Returns the ones it does not have (safe to give to another worker now); those it has are
   * running there (their reports follow); those it could not be asked about are held.
   */
  private async confirmOrHold(address: string, list: PendingSend[]): Promise<PendingSend[]> {
    if (list.length === 0) return [];
    const workerKey = list[0]?.target.key as string;
    const states = await this.askWorker(address, workerKey, list);
    if (!states) {
      for (const s of list) this.hold(s, address);
      return [];
    }
    const free: PendingSend[] = [];
    for (const s of list) {
      const state = states.get(String(s.attemptId));
      if (state === 'revoked') free.push(s);
      else if (state === undefined) this.hold(s, address);
      else this.opts.router.reportDispatchSuccess(s.target.key);
    }
    return free;
  }

  /**
   * `revoke` on the worker for attempts whose delivery is uncertain: each one's state there, or
   * `revoked`. Null when the worker could not be asked (logged unless `quiet`).
   */
  private async askWorker(
    address: string,
    workerKey: string,
    list: readonly { attemptId: number; seq: number }[],
    opts: { quiet?: boolean } = {},
  ): Promise<Map<string, string> | null> {
    try {
      const states = new Map<string, string>();
      for (let i = 0; i < list.length; i += MAX_PER_REQUEST) {
        const chunk = list.slice(i, i + MAX_PER_REQUEST);
        const answer = await this.opts.client.revoke(
          address,
          workerKey,
          chunk.map((x) => ({ attemptId: String(x.attemptId), dispatchSeq: x.seq })),
        );
        for (const [id, state] of answer) states.set(id, state);
      }
      return states;
    } catch (err) {
      if (!opts.quiet) {
        this.opts.logger.warn(
          { err, worker: address, attempts: list.map((x) => x.attemptId) },
          'could not ask the worker whether it has the attempts; they stay with it until it answers or is failed over',
        );
      }
      return null;
    }
  }

  /** Keeps an attempt with its worker and asks again every `unconfirmedRetryMs` (see `recheckUnconfirmed`). */
  private hold(s: PendingSend, address: string): void {
    this.unconfirmed.set(s.attemptId, {
      attemptId: s.attemptId,
      runId: s.run.id,
      address,
      workerKey: s.target.key,
      seq: s.seq,
    });
    this.scheduleRecheck();
  }

  private scheduleRecheck(): void {
    if (this.unconfirmedTimer || !this.started || this.unconfirmed.size === 0) return;
    this.unconfirmedTimer = setTimeout(() => {
      this.unconfirmedTimer = null;
      this.recheckUnconfirmed()
        .catch((err) => this.opts.logger.warn({ err }, 'asking workers about unconfirmed attempts failed'))
        .finally(() => this.scheduleRecheck());
    }, this.opts.unconfirmedRetryMs ?? 2_000);
    this.unconfirmedTimer.unref();
  }

  /**
   * Held attempts: dropped once their row moved on (a report came: the worker had it; or the
   * failover took it over); otherwise the worker is asked again, and the ones it does not have go
   * back to `pending` (fenced on the same worker and seq) and their runs are driven again.
   */
  private async recheckUnconfirmed(): Promise<void> {
    if (!this.opts.leaseValid()) return;
    const held = [...this.unconfirmed.values()];
    const still = await stillDispatched(
      this.opts.db,
      held.map((u) => ({ id: u.attemptId, workerKey: u.workerKey, dispatchSeq: u.seq })),
    );
    const byWorker = new Map<string, Unconfirmed[]>();
    for (const u of held) {
      if (!still.has(u.attemptId)) {
        this.unconfirmed.delete(u.attemptId);
        continue;
      }
      const k = `${u.address} ${u.workerKey}`;
      byWorker.set(k, [...(byWorker.get(k) ?? []), u]);
    }
    for (const list of byWorker.values()) {
      const { address, workerKey } = list[0] as Unconfirmed;
      const states = await this.askWorker(address, workerKey, list, { quiet: true });
      if (!states) continue; // still unreachable: ask again later
      const wake: number[] = [];
      for (const u of list) {
        const state = states.get(String(u.attemptId));
        if (state === undefined) continue;
        this.unconfirmed.delete(u.attemptId);
        if (state !== 'revoked') continue; // it has it: its reports follow
        const moved = await reassignAttempt(this.opts.db, u.attemptId, u.workerKey, null, {
          fromSeq: u.seq,
          owner: this.opts.owner,
        });
        if (moved !== null) wake.push(u.runId);
      }
      if (wake.length > 0) {
        this.opts.logger.info(
          { worker: address, attempts: wake.length },
          'the worker confirmed it does not have attempts whose dispatch answer was lost; dispatching them again',
        );
        this.wake(wake);
      }
    }
  }

  /** Reassigns to the next fallback (true = send again) or back to pending (false). */
  private async moveToNext(s: PendingSend, fromKey: string | null): Promise<boolean> {
    const next = s.fallbacks.shift() ?? null;
    const from = fromKey === null ? null : fromKey;
    const seq = await reassignAttempt(this.opts.db, s.attemptId, from, next, {
      fromSeq: s.seq,
      owner: this.opts.owner,
    });
    if (seq === null) return false; // a report or the failover coordinator got there first
    s.seq = seq;
    // The same worker under a newer registration may hold the old copy; another worker does not.
    s.mayHave = next !== null && next.key === fromKey;
    if (next) {
      s.target = next;
      return true;
    }
    this.wakeLater(s.run.id, this.opts.noWorkerRetryMs ?? 1_000);
    return false;
  }

  private async cancelAttempts(attempts: DriveAttempt[]): Promise<void> {
    const active = attempts.filter(
      (a) => (a.state === 'dispatched' || a.state === 'running') && a.workerAddress,
    );
    await Promise.all(
      active.map((a) =>
        this.opts.client
          .cancel(a.workerAddress as string, String(a.id), 'run cancelled')
          .catch((err) => this.opts.logger.warn({ err, attemptId: a.id }, 'cancel not delivered')),
      ),
    );
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

function attemptKey(a: { runId: number; taskName: string; shardIndex: number; attempt: number }): string {
  return `${a.runId}|${a.taskName}|${a.shardIndex}|${a.attempt}`;
}

const UNASSIGNED: Target = { address: '', startTime: 0, key: '', czxid: null };

function toPlannedTask(t: TaskDefinition): PlannedTask {
  return {
    name: t.name,
    dependsOn: t.dependsOn,
    retries: {
      max: t.retries.max,
      backoff: t.retries.backoff,
      delayMs: t.retries.delayMs,
      ...(t.retries.maxDelayMs === null ? {} : { maxDelayMs: t.retries.maxDelayMs }),
    },
    failover: t.failover,
  };
}

function toAttemptView(a: DriveAttempt): AttemptView {
  return {
    taskName: a.taskName,
    attempt: a.attempt,
    shardIndex: a.shardIndex,
    shardTotal: a.shardTotal,
    state: a.state,
    endedAt: a.endedAtMs,
  };
}
