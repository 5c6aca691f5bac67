import { type Clock, createLogger, type Logger, systemClock, withDefaults } from '@sched/core';
import {
  type ConcurrencyPolicy,
  CronSchedule,
  type FireOutcome,
  type FireRequest,
  fireSchedules,
  listDueSchedules,
  listReleasableQueues,
  releaseQueuedRun,
  type ScheduleAdvance,
  type ScheduleRow,
} from '@sched/store';
import type pg from 'pg';
import { type FirePlan, planFire } from './fire-plan.js';
import { ownsSchedule, type SlotAssignment, sameAssignment, slotOf } from './slot-assignment.js';
import { type PreparedRuns, type PrepareRuns, prepareUnderSavepoint, type StagedRun } from './staged-runs.js';

/**
 * ScheduleFirer: fires the cron schedules of this master's slot, exactly once per
 * (schedule, fire time), with millisecond timers (docs/design.md#firing).
 *
 * Lifecycle:
 *
 *   state     | start()          | stop()
 *   ----------+------------------+-----------------------------------------
 *   idle      | → running        | (no-op)
 *   running   | (no-op)          | → stopping: timers cleared, in-flight fires awaited → stopped
 *   stopping  | running again once stopped | (no-op; cancels a start() asked meanwhile)
 *   stopped   | → running        | (no-op)
 *
 * A master that fences itself stops its firer without waiting and starts it again when it
 * registers in a new session; that start may come while the stop still awaits an in-flight
 * fire, and must not be lost (the master would never fire again).
 *
 * While running, a scan every `scanIntervalMs` (and at once on membership change) reads the
 * schedules of this slot due within `lookAheadMs` (the pre-read window) and arms one timer per
 * distinct fire time. When a timer fires, every schedule due at that instant is fired in ONE
 * statement (store's fireSchedules: CAS next_fire_time + insert run with unique key). After a
 * successful fire the next fire time is computed in memory and re-armed without a re-read when it
 * falls inside the window, so a schedule firing every second costs one statement per second
 * (shared with every other schedule due at that second).
 *
 * Safety does not depend on this class being right about ownership: the database refuses a
 * second fire. Liveness does: a master fires only while `leaseValid()` (its registry lease) and
 * only the schedules of its slot in `liveMasters()`.
 */

export interface ScheduleFirerOptions {
  /** Pre-read window: schedules due within this are armed in memory. @defaultValue 5000 */
  lookAheadMs: number;
  /** How often the due schedules are re-read. @defaultValue 1000 */
  scanIntervalMs: number;
  /** At most this many schedules are read per scan. @defaultValue 20000 */
  scanLimit: number;
  /** At most this many schedules go in one fire statement; larger sets are split and sent in parallel. @defaultValue 1000 */
  batchMax: number;
  /** How often queued runs (concurrency `queue`) are checked for release. @defaultValue 1000 */
  queueSweepMs: number;
  /**
   * Fires of policy `allow` that are on time are executed this long before their fire time in an
   * open transaction, and COMMITTED at the fire time: the runs become visible at the fire time
   * (never before) and the lag is one commit instead of the whole statement. 0 = execute at the
   * fire time. @defaultValue 300
   */
  prestageMs: number;
}

export const DEFAULT_SCHEDULE_FIRER_OPTIONS = {
  lookAheadMs: 5000,
  scanIntervalMs: 1000,
  scanLimit: 20_000,
  batchMax: 1000,
  queueSweepMs: 1000,
  prestageMs: 300,
} satisfies ScheduleFirerOptions;

export interface FiredRun {
  runId: number;
  scheduleId: number;
  fireTimeMs: number;
  queued: boolean;
  /** Wall time (clock.now()) when the statement that created the run had committed. */
  committedAtMs: number;
  /** Its first tasks were dispatched with the fire (`prepareRuns`): nobody needs to wake it. */
  prepared: boolean;
}

export interface ScheduleFirerDeps {
  pool: pg.Pool;
  /** This master's incarnation key; runs it fires are owned by it. */
  nodeKey: string;
  /** Keys of the live masters (from the registry). */
  liveMasters: () => readonly string[];
  /** False while the registry lease is suspended or lost: nothing is fired then. */
  leaseValid: () => boolean;
  clock?: Clock;
  logger?: Logger;
  options?: Partial<ScheduleFirerOptions>;
  /** Called with the runs each fire statement created (after commit). */
  onRunsCreated?: (runs: FiredRun[]) => void;
  /**
   * Called inside a pre-staged fire's transaction, before the fire time, with the runs it created:
   * the run driver persists their first attempts there (docs/scheduling.md#from-fire-to-start), so
   * that at the fire time only the commit and the sends are left. A failure is rolled back to a
   * savepoint and the runs are driven the usual way.
   */
  prepareRuns?: PrepareRuns;
  /** Called with queued runs (concurrency `queue`) that the sweep released, i.e. that may start now. */
  onRunsReleased?: (runIds: number[]) => void;
}

export interface FirerStats {
  /** Completed scans of the due schedules. */
  scans: number;
  fireStatements: number;
  runsCreated: number;
  /** Fires refused by the database CAS (another master fired, or the schedule changed). */
  casLost: number;
  misfires: number;
  droppedMisfires: number;
  errors: number;
}

interface Armed {
  row: ScheduleRow;
  cron: CronSchedule;
  fireAtMs: number;
  /** cron.next(fireAtMs), computed when armed so the fire itself does no cron work. */
  nextAfterMs: number | null | undefined;
  inFlight: boolean;
  /** Generation of the last in-memory change, so a scan that started earlier does not overwrite it. */
  gen: number;
}

type FirerState = 'idle' | 'running' | 'stopping' | 'stopped';

export class ScheduleFirer {
  private state: FirerState = 'idle';
  /** A start() asked while stopping: done once stopped. */
  private startWhenStopped = false;
  private readonly clock: Clock;
  private readonly log: Logger;
  private readonly opts: ScheduleFirerOptions;
  private readonly armed = new Map<number, Armed>();
  private readonly buckets = new Map<number, { ids: Set<number>; timer: NodeJS.Timeout }>();
  private readonly cronCache = new Map<string, CronSchedule>();
  private readonly inFlight = new Set<Promise<unknown>>();
  private assignment: SlotAssignment | null = null;
  private scanTimer: NodeJS.Timeout | undefined;
  private queueTimer: NodeJS.Timeout | undefined;
  private scanning: Promise<void> | null = null;
  private rescanRequested = false;
  private gen = 0;
  readonly stats: FirerStats = {
    scans: 0,
    fireStatements: 0,
    runsCreated: 0,
    casLost: 0,
    misfires: 0,
    droppedMisfires: 0,
    errors: 0,
  };

  constructor(private readonly deps: ScheduleFirerDeps) {
    this.clock = deps.clock ?? systemClock;
    this.log = (deps.logger ?? createLogger({ name: 'scheduler' })).child({ component: 'schedule-firer' });
    this.opts = withDefaults(deps.options ?? {}, DEFAULT_SCHEDULE_FIRER_OPTIONS);
  }

  get currentState(): FirerState {
    return this.state;
  }

  /** Schedules currently armed in memory (for tests and metrics). */
  get armedCount(): number {
    return this.armed.size;
  }

  start(): void {
    if (this.state === 'stopping') {
      this.startWhenStopped = true;
      return;
    }
    if (this.state === 'running') return;
    this.state = 'running';
    this.requestScan();
    this.scheduleQueueSweep();
  }

  async stop(): Promise<void> {
    if (this.state === 'stopping') this.startWhenStopped = false;
    if (this.state !== 'running') return;
    this.state = 'stopping';
    clearTimeout(this.scanTimer);
    clearTimeout(this.queueTimer);
    this.disarmAll();
    await this.scanning;
    await Promise.allSettled([...this.inFlight]);
    this.state = 'stopped';
    if (this.startWhenStopped) {
      this.startWhenStopped = false;
      this.start();
    }
  }

  /** Call when the live master list changed: re-slots at once instead of at the next scan. */
  membershipChanged(): void {
    if (this.state === 'running') this.requestScan();
  }

  // ---- scanning -----------------------------------------------------------------------------

  private requestScan(): void {
    if (this.scanning) {
      this.rescanRequested = true;
      return;
    }
    clearTimeout(this.scanTimer);
    this.scanning = this.scan()
      .catch((err) => {
        this.stats.errors += 1;
        this.log.warn({ err }, 'schedule scan failed; retrying at the next interval');
      })
      .finally(() => {
        this.scanning = null;
        if (this.state !== 'running') return;
        if (this.rescanRequested) {
          this.rescanRequested = false;
          this.requestScan();
        } else {
          this.scanTimer = setTimeout(() => this.requestScan(), this.opts.scanIntervalMs);
        }
      });
  }

  /** Recomputes the slot; drops what is no longer ours; returns the assignment (null = fire nothing). */
  private refreshAssignment(): SlotAssignment | null {
    const next = this.deps.leaseValid() ? slotOf(this.deps.nodeKey, this.deps.liveMasters()) : null;
    if (!sameAssignment(next, this.assignment)) {
      this.log.info({ from: this.assignment, to: next }, 'schedule slot changed');
      this.assignment = next;
      for (const [id, a] of this.armed) {
        if (next === null || !ownsSchedule(next, id)) {
          if (!a.inFlight) this.disarm(id);
        }
      }
    }
    return next;
  }

  private async scan(): Promise<void> {
    const assignment = this.refreshAssignment();
    if (assignment === null || this.state !== 'running') return;
    const genAtStart = this.gen;
    const now = this.clock.now();
    const rows = await listDueSchedules(this.deps.pool, {
      untilMs: now + this.opts.lookAheadMs,
      slot: assignment.slot,
      slotCount: assignment.slotCount,
      limit: this.opts.scanLimit,
    });
    if (this.state !== 'running' || !sameAssignment(assignment, this.assignment)) return;
    for (const row of rows) {
      if (row.nextFireTime === null) continue;
      const current = this.armed.get(row.id);
      if (current) {
        if (current.inFlight || current.gen > genAtStart) continue;
        if (current.fireAtMs === row.nextFireTime && current.row.revision === row.revision) continue;
        this.disarm(row.id);
      }
      let cron: CronSchedule;
      try {
        cron = this.cronFor(row);
      } catch (err) {
        this.stats.errors += 1;
        this.log.error(
          { err, scheduleId: row.id, cron: row.cron },
          'stored cron expression does not parse; schedule skipped',
        );
        continue;
      }
      this.arm({
        row,
        cron,
        fireAtMs: row.nextFireTime,
        nextAfterMs: cron.next(row.nextFireTime),
        inFlight: false,
        gen: ++this.gen,
      });
    }
    this.stats.scans += 1;
  }

  private cronFor(row: ScheduleRow): CronSchedule {
    const key = `${row.cron}\u0000${row.timezone}\u0000${row.startAt}\u0000${row.endAt}`;
    let cron = this.cronCache.get(key);
    if (!cron) {
      cron = new CronSchedule(row.cron, {
        timezone: row.timezone,
        startAt: row.startAt ?? undefined,
        endAt: row.endAt ?? undefined,
      });
      if (this.cronCache.size > 10_000) this.cronCache.clear();
      this.cronCache.set(key, cron);
    }
    return cron;
  }

  // ---- timers -------------------------------------------------------------------------------

  private arm(a: Armed): void {
    this.armed.set(a.row.id, a);
    let bucket = this.buckets.get(a.fireAtMs);
    if (!bucket) {
      const at = a.fireAtMs;
      bucket = {
        ids: new Set(),
        timer: setTimeout(
          () => this.onBucketDue(at),
          Math.max(0, at - this.opts.prestageMs - this.clock.now()),
        ),
      };
      this.buckets.set(at, bucket);
    }
    bucket.ids.add(a.row.id);
  }

  private disarm(id: number): void {
    const a = this.armed.get(id);
    if (!a) return;
    this.armed.delete(id);
    const bucket = this.buckets.get(a.fireAtMs);
    if (bucket) {
      bucket.ids.delete(id);
      if (bucket.ids.size === 0) {
        clearTimeout(bucket.timer);
        this.buckets.delete(a.fireAtMs);
      }
    }
  }

  private disarmAll(): void {
    for (const b of this.buckets.values()) clearTimeout(b.timer);
    this.buckets.clear();
    for (const [id, a] of this.armed) if (!a.inFlight) this.armed.delete(id);
  }

  private onBucketDue(fireAtMs: number): void {
    const bucket = this.buckets.get(fireAtMs);
    if (!bucket) return;
    // Timers run on the monotonic clock; never start before the wall-clock (pre-stage) time.
    const early = fireAtMs - this.opts.prestageMs - this.clock.now();
    if (early > 0) {
      bucket.timer = setTimeout(() => this.onBucketDue(fireAtMs), early);
      return;
    }
    this.buckets.delete(fireAtMs);
    const due: Armed[] = [];
    for (const id of bucket.ids) {
      const a = this.armed.get(id);
      if (a && a.fireAtMs === fireAtMs && !a.inFlight) due.push(a);
    }
    if (due.length > 0) this.track(this.fire(due, fireAtMs));
  }

  private track(p: Promise<unknown>): void {
    this.inFlight.add(p);
    p.finally(() => this.inFlight.delete(p));
  }

  // ---- firing -------------------------------------------------------------------------------

  private async fire(due: Armed[], fireAtMs: number): Promise<void> {
    const assignment = this.refreshAssignment();
    if (this.state !== 'running' || assignment === null) {
      for (const a of due) this.disarm(a.row.id);
      return;
    }
    const mine = due.filter((a) => ownsSchedule(assignment, a.row.id));
    for (const a of due) if (!ownsSchedule(assignment, a.row.id)) this.disarm(a.row.id);
    if (mine.length === 0) return;

    // Planned as of the fire time when we are early (pre-staging): an early fire is on time.
    const now = Math.max(this.clock.now(), fireAtMs);
    const plans = new Map<number, FirePlan>();
    for (const a of mine) {
      a.inFlight = true;
      a.gen = ++this.gen;
      const plan = planFire(a.row, a.cron, a.fireAtMs, now, a.nextAfterMs);
      plans.set(a.row.id, plan);
      if (plan.misfired) {
        this.stats.misfires += 1;
        this.stats.droppedMisfires += plan.dropped;
        this.log.warn(
          {
            scheduleId: a.row.id,
            fireTime: new Date(a.fireAtMs).toISOString(),
            policy: a.row.misfire,
            runs: plan.fires.length,
            dropped: plan.dropped,
          },
          'misfire',
        );
      }
    }
    const batches: Armed[][] = [];
    // One statement per policy and per batchMax schedules; all sent at once (the pool runs them in parallel).
    const byPolicy = new Map<ConcurrencyPolicy, Armed[]>();
    for (const a of mine) {
      const list = byPolicy.get(a.row.concurrency);
      if (list) list.push(a);
      else byPolicy.set(a.row.concurrency, [a]);
    }
    for (const list of byPolicy.values()) {
      for (let i = 0; i < list.length; i += this.opts.batchMax)
        batches.push(list.slice(i, i + this.opts.batchMax));
    }
    await Promise.all(batches.map((batch) => this.fireBatch(batch, plans, fireAtMs)));
  }

  /** Resolves at wall-clock time `atMs` (re-arming if the monotonic timer wakes early). */
  private async untilWallClock(atMs: number): Promise<void> {
    for (let left = atMs - this.clock.now(); left > 0; left = atMs - this.clock.now()) {
      await new Promise((r) => setTimeout(r, left));
    }
  }

  /**
   * Executes the fire statement in a transaction opened before the fire time and commits it at
   * the fire time, if the lease is still valid then (else rolls back). The open transaction holds
   * the schedules' rows: a competing master's CAS waits and then fails. A master paused while
   * holding it is cut off by idle_in_transaction_session_timeout, which releases the rows.
   */
  private async firePrestaged(
    policy: ConcurrencyPolicy,
    advances: ScheduleAdvance[],
    fires: FireRequest[],
    fireAtMs: number,
  ): Promise<{ outcomes: FireOutcome[]; prepared: PreparedRuns | null }> {
    const client = await this.deps.pool.connect();
    // Set when the connection itself fails (server closed it, e.g. idle_in_transaction_session_timeout
    // after this process was paused): such a client is destroyed instead of returned to the pool.
    let connectionError: Error | undefined;
    const onError = (err: Error) => {
      connectionError = err;
    };
    client.on('error', onError);
    try {
      await client.query('BEGIN');
      await client.query(`SET LOCAL idle_in_transaction_session_timeout = ${this.opts.prestageMs + 2000}`);
      const outcomes = await fireSchedules(client, this.deps.nodeKey, policy, advances, fires);
      const prepared = await this.prepare(client, outcomes);
      await this.untilWallClock(fireAtMs);
      // Checked as late as possible: a master paused (GC, SIGSTOP) must not act on a stale lease.
      if (!this.deps.leaseValid()) throw new Error('registry lease not valid at the fire time');
      await client.query('COMMIT');
      return { outcomes, prepared };
    } catch (err) {
      if (!connectionError) {
        // A ROLLBACK that fails means the connection is broken: destroy it, do not pool it.
        await client.query('ROLLBACK').catch((rollbackErr: Error) => {
          connectionError = rollbackErr;
        });
      }
      throw err;
    } finally {
      client.off('error', onError);
      client.release(connectionError);
    }
  }

  /** `prepareRuns` for the runs of this fire, under a savepoint: its failure costs the fire nothing. */
  private async prepare(client: pg.PoolClient, outcomes: FireOutcome[]): Promise<PreparedRuns | null> {
    const runs: StagedRun[] = [];
    for (const o of outcomes) {
      for (const r of o.runs) {
        if (!r.queued)
          runs.push({
            runId: r.runId,
            workflowId: r.workflowId,
            version: r.version,
            fireTimeMs: r.fireTimeMs,
          });
      }
    }
    return prepareUnderSavepoint(client, this.deps.prepareRuns, runs, this.log);
  }

  private async fireBatch(batch: Armed[], plans: Map<number, FirePlan>, fireAtMs: number): Promise<void> {
    const advances = batch.map((a) => (plans.get(a.row.id) as FirePlan).advance);
    const fires = batch.flatMap((a) => (plans.get(a.row.id) as FirePlan).fires);
    const policy = (batch[0] as Armed).row.concurrency;
    const prestage =
      this.opts.prestageMs > 0 &&
      policy === 'allow' &&
      this.clock.now() < fireAtMs &&
      batch.every((a) => !(plans.get(a.row.id) as FirePlan).misfired);
    let outcomes: FireOutcome[];
    let prepared: PreparedRuns | null = null;
    try {
      if (prestage) {
        ({ outcomes, prepared } = await this.firePrestaged(policy, advances, fires, fireAtMs));
      } else {
        // Other policies look at the workflow's active runs: that must happen at the fire time.
        await this.untilWallClock(fireAtMs);
        // Checked as late as possible: a master paused (GC, SIGSTOP) must not act on a stale lease.
        if (!this.deps.leaseValid()) throw new Error('registry lease not valid');
        outcomes = await fireSchedules(this.deps.pool, this.deps.nodeKey, policy, advances, fires);
      }
    } catch (err) {
      this.stats.errors += 1;
      this.log.warn(
        { err, schedules: batch.length },
        'fire failed; the schedules will be re-read and fired late',
      );
      for (const a of batch) {
        a.inFlight = false;
        this.disarm(a.row.id);
      }
      return;
    }
    const committedAtMs = this.clock.now();
    // Committed: the prepared dispatches may go out now (first thing, they are what users wait for).
    prepared?.afterCommit();
    this.stats.fireStatements += 1;
    const created: FiredRun[] = [];
    const rearmed: Armed[] = [];
    for (const o of outcomes) {
      const a = this.armed.get(o.scheduleId);
      if (!a) continue;
      a.inFlight = false;
      if (!o.advanced) {
        this.stats.casLost += 1;
        this.disarm(o.scheduleId);
        continue;
      }
      for (const r of o.runs)
        created.push({
          runId: r.runId,
          scheduleId: o.scheduleId,
          fireTimeMs: r.fireTimeMs,
          queued: r.queued,
          committedAtMs,
          prepared: prepared?.runIds.has(r.runId) ?? false,
        });
      const nextMs = (plans.get(o.scheduleId) as FirePlan).advance.nextMs;
      this.disarm(o.scheduleId);
      const assignment = this.assignment;
      if (
        nextMs !== null &&
        this.state === 'running' &&
        assignment !== null &&
        ownsSchedule(assignment, o.scheduleId) &&
        nextMs <= this.clock.now() + this.opts.lookAheadMs
      ) {
        const e: Armed = {
          row: a.row,
          cron: a.cron,
          fireAtMs: nextMs,
          nextAfterMs: undefined,
          inFlight: false,
          gen: ++this.gen,
        };
        this.arm(e);
        rearmed.push(e);
      }
    }
    this.stats.runsCreated += created.length;
    if (created.length > 0) this.deps.onRunsCreated?.(created);
    // Next fire times for the re-armed entries, now that the fire is committed and the loop is idle.
    for (const e of rearmed) e.nextAfterMs = e.cron.next(e.fireAtMs);
  }

  // ---- queue policy -------------------------------------------------------------------------

  private scheduleQueueSweep(): void {
    this.queueTimer = setTimeout(() => {
      if (this.state !== 'running') return;
      const p = this.sweepQueues()
        .catch((err) => this.log.warn({ err }, 'queue sweep failed'))
        .finally(() => {
          if (this.state === 'running') this.scheduleQueueSweep();
        });
      this.track(p);
    }, this.opts.queueSweepMs);
  }

  /** Starts the next queued run of every workflow whose previous run has ended. */
  async sweepQueues(): Promise<number[]> {
    if (!this.deps.leaseValid()) return [];
    const released: number[] = [];
    for (const workflowId of await listReleasableQueues(this.deps.pool, 100)) {
      const runId = await releaseQueuedRun(this.deps.pool, workflowId);
      if (runId !== null) released.push(runId);
    }
    if (released.length > 0) this.deps.onRunsReleased?.(released);
    return released;
  }
}
