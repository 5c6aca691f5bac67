import { type ChildProcess, spawn } from 'node:child_process';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  type Clock,
  formatDuration,
  type Logger,
  sleep,
  systemClock,
  type WithDefaults,
  withDefaults,
} from '@sched/core';
import type {
  AttemptRequest,
  AttemptResult,
  AttemptSnapshot,
  FinalAttemptState,
  HttpTask,
} from '@sched/protocol';
import type { AttemptLog } from '../logs/attempt-log.js';
import type { LogStore } from '../logs/log-store.js';
import { AttemptRevokedError, WorkerAtCapacityError, WorkerDrainingError } from './errors.js';
import { type HttpNetworkOptions, HttpNetworkPolicy, HttpTargetRefusedError } from './http-networks.js';
import { callHttp, type HostResolver, shown } from './http-request.js';
import { type TerminationOutcome, terminateGroup } from './process-group.js';
import { taskEnvironment } from './task-environment.js';
import type { ProcessGroupWatcher, SupervisorKill } from './task-supervisor.js';

export type ExecutorEvent =
  | { type: 'running'; request: AttemptRequest; snapshot: AttemptSnapshot }
  | { type: 'finished'; request: AttemptRequest; result: AttemptResult };

export interface TaskExecutorOptions {
  /**
   * Process slots: shell and script tasks running at once. A slot is held from the process's
   * start until its process group is gone — not while the result is spooled or reported.
   */
  capacity: number;
  /** http tasks running at once (they hold a socket, not a process). @defaultValue 256 */
  httpCapacity?: number;
  /**
   * Accepted attempts that wait for a free slot of their kind (FIFO). Beyond it a submit is
   * refused (`WORKER_AT_CAPACITY`, the master routes elsewhere or waits). noop attempts never
   * wait: they hold no slot. @defaultValue 1000
   */
  backlog?: number;
  /** Between SIGTERM and SIGKILL to a task's process group. */
  killGraceMs: number;
  logs: LogStore;
  /** Parent of per-attempt work directories (cwd of the task, scripts), usually `<dataDir>/work`. */
  workDir: string;
  clock?: Clock;
  logger?: Logger;
  /** Environment the task environment starts from. @defaultValue process.env */
  baseEnv?: Readonly<Record<string, string | undefined>>;
  /**
   * Told about every task process group (the task supervisor); a task SIGKILLed by it is handed
   * back (`failed-over`), not `failed`. @defaultValue none
   */
  groupWatcher?: ProcessGroupWatcher;
  /**
   * How long a task that ended by a SIGKILL nobody here sent waits for the task supervisor to say
   * it killed it (its word and the exit may arrive in either order after a freeze) before the
   * attempt is reported `failed`. Only with a `groupWatcher` that reports kills. @defaultValue 250
   */
  supervisorWordMs?: number;
  /**
   * How many finished attempts are remembered, so a re-sent dispatch is answered, not re-run; and
   * how many revoked attempt ids, so a late copy of a revoked dispatch is refused. Past that the
   * oldest are forgotten. @defaultValue 10000
   */
  rememberFinished?: number;
  /**
   * Networks http tasks may and may not reach (`worker.httpAllowNetworks`,
   * `worker.httpDenyNetworks`; docs/tasks.md#which-networks-an-http-task-may-reach).
   * @defaultValue any network but DEFAULT_HTTP_DENY_NETWORKS (link-local, cloud metadata)
   */
  httpNetworks?: HttpNetworkOptions;
  /** Redirects an http task follows at most (each target checked first). @defaultValue 5 */
  httpMaxRedirects?: number;
  /** Resolves http tasks' host names to every address (tests). @defaultValue the system resolver */
  httpResolver?: HostResolver;
}

export const DEFAULT_TASK_EXECUTOR_OPTIONS = {
  httpCapacity: 256,
  backlog: 1000,
  supervisorWordMs: 250,
  rememberFinished: 10_000,
  httpMaxRedirects: 5,
} as const satisfies Required<
  Pick<
    TaskExecutorOptions,
    'httpCapacity' | 'backlog' | 'supervisorWordMs' | 'rememberFinished' | 'httpMaxRedirects'
  >
>;

export type SubmitOutcome =
  | { accepted: true; snapshot: AttemptSnapshot }
  | { accepted: false; snapshot: AttemptSnapshot };

/** The answer to `revoke` for an attempt this worker does not know: it will not start it. */
export interface RevokedAttempt {
  attemptId: string;
  state: 'revoked';
}

/**
 * `immediate`: SIGKILL at once, no grace (self-fencing, docs/decisions/0004-fencing-kill.md).
 * `handBack`: the attempt ends `failed-over`, not `killed`, so the master re-runs it without
 * using a retry (attempt-result.ts): the worker may no longer run it (self-fencing, failed over)
 * or gives it back (a drain that ran out of time, a stop).
 */
type StopReason =
  | { kind: 'timeout' }
  | { kind: 'cancel'; reason: string; immediate?: boolean; handBack?: boolean };

/** What an attempt holds while it runs: a process slot, an http slot, or nothing (noop). */
export type SlotKind = 'process' | 'http' | 'none';

function slotKindOf(type: AttemptRequest['task']['type']): SlotKind {
  if (type === 'shell' || type === 'script') return 'process';
  return type === 'http' ? 'http' : 'none';
}

interface LiveAttempt {
  request: AttemptRequest;
  slot: SlotKind;
  /** Accepted, waiting for a slot: nothing of it has started yet. */
  queued: boolean;
  startedAt: string;
  startedMono: number;
  pgid: number | null;
  stop: StopReason | null;
  abort: AbortController;
  log: AttemptLog | null;
  done: Promise<AttemptResult>;
  timer: NodeJS.Timeout | null;
  killing: Promise<unknown> | null;
  /** Resolves `done` of an attempt that was queued (it ends when it ran, or without running). */
  release?: (r: AttemptResult) => void;
}

/**
 * Runs task attempts on this worker: shell, script, http, noop. Each process task is the leader
 * of its own process group, so a timeout or cancel (SIGTERM, grace, SIGKILL) reaches everything
 * it started; left-over group members are cleaned up the same way when the leader exits.
 * Idempotent on the attempt id.
 *
 * Capacity (docs/tasks.md#capacity): shell and script tasks hold a process slot (`capacity`),
 * http tasks an http slot (`httpCapacity`), noop tasks nothing. A slot is held only while the
 * task runs: it is free again the moment the process group is gone (or the response is read),
 * before the result is spooled or reported. An attempt that finds no free slot of its kind waits
 * in the backlog (FIFO per kind, at most `backlog` attempts in all); beyond that it is refused
 * with `WORKER_AT_CAPACITY` and the master routes it elsewhere or waits.
 *
 * | attempt state | event                         | next                                   |
 * |---------------|-------------------------------|----------------------------------------|
 * | (unknown)     | submit, slot free / noop      | running                                |
 * | (unknown)     | submit, no slot, backlog room | queued                                 |
 * | (unknown)     | submit, backlog full          | refused (WORKER_AT_CAPACITY)           |
 * | queued        | a slot of its kind frees up (not draining) | running                   |
 * | queued        | cancel / killAll / handBackQueued | killed or failed-over, never started |
 * | running       | task ends                     | final state; the slot is free at once  |
 */
export class TaskExecutor {
  readonly capacity: number;
  readonly httpCapacity: number;
  readonly backlog: number;
  private readonly opts: WithDefaults<TaskExecutorOptions, typeof DEFAULT_TASK_EXECUTOR_OPTIONS>;
  private readonly clock: Clock;
  /** Where http tasks may connect. */
  readonly httpNetworks: HttpNetworkPolicy;
  /** Queued and running attempts. */
  private readonly live = new Map<string, LiveAttempt>();
  /** Attempts waiting for a slot, per kind, oldest first (each also in `live`). */
  private readonly waiting: Record<'process' | 'http', LiveAttempt[]> = { process: [], http: [] };
  /** Slots in use per kind. */
  private readonly inUse: Record<'process' | 'http', number> = { process: 0, http: 0 };
  private readonly finished = new Map<string, { request: AttemptRequest; result: AttemptResult }>();
  /** Attempt id → highest revoked `dispatchSeq`; oldest revoke first (it is dropped first). */
  private readonly revoked = new Map<string, number>();
  private readonly listeners = new Set<(e: ExecutorEvent) => void>();
  private isDraining = false;
  private startedCount = 0;

  constructor(options: TaskExecutorOptions) {
    const opts = withDefaults(options, DEFAULT_TASK_EXECUTOR_OPTIONS);
    if (!Number.isInteger(opts.capacity) || opts.capacity < 1) {
      throw new RangeError(`capacity must be a positive integer, got ${opts.capacity}`);
    }
    const { httpCapacity, backlog } = opts;
    if (!Number.isInteger(httpCapacity) || httpCapacity < 1) {
      throw new RangeError(`httpCapacity must be a positive integer, got ${httpCapacity}`);
    }
    if (!Number.isInteger(backlog) || backlog < 0) {
      throw new RangeError(`backlog must be a non-negative integer, got ${backlog}`);
    }
    this.opts = opts;
    this.capacity = opts.capacity;
    this.httpCapacity = httpCapacity;
    this.backlog = backlog;
    this.clock = opts.clock ?? systemClock;
    this.httpNetworks = new HttpNetworkPolicy(opts.httpNetworks);
    mkdirSync(opts.workDir, { recursive: true });
  }

  /** Process slots in use: shell and script tasks running now (until their process group is gone). */
  get running(): number {
    return this.inUse.process;
  }

  /** http tasks running now. */
  get httpRunning(): number {
    return this.inUse.http;
  }

  /** Accepted attempts waiting for a slot. */
  get queued(): number {
    return this.waiting.process.length + this.waiting.http.length;
  }

  /** Whether a submit of a task of this kind would be refused for lack of room now. */
  full(kind: SlotKind = 'process'): boolean {
    if (kind === 'none') return false;
    return !this.hasFreeSlot(kind) && this.queued >= this.backlog;
  }

  /** Attempts ever started by this executor (duplicates not counted). */
  get started(): number {
    return this.startedCount;
  }

  get draining(): boolean {
    return this.isDraining;
  }

  on(listener: (e: ExecutorEvent) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /**
   * Starts an attempt. A known attempt id (running or recently finished) is not started again:
   * the outcome says `accepted: false` with its current snapshot. A dispatch that a master
   * revoked (`revoke` with a `dispatchSeq` at least this one's) is refused.
   * @throws AttemptRevokedError, WorkerDrainingError, WorkerAtCapacityError
   */
  submit(request: AttemptRequest): SubmitOutcome {
    const known = this.snapshot(request.attemptId);
    if (known) return { accepted: false, snapshot: known };
    const revokedUpTo = this.revoked.get(request.attemptId);
    if (revokedUpTo !== undefined && revokedUpTo >= request.dispatchSeq) {
      throw new AttemptRevokedError(request.attemptId, request.dispatchSeq);
    }
    if (this.isDraining) throw new WorkerDrainingError();
    const slot = slotKindOf(request.task.type);
    const startNow = slot === 'none' || (this.hasFreeSlot(slot) && this.waiting[slot].length === 0);
    if (!startNow && this.queued >= this.backlog) {
      throw new WorkerAtCapacityError(
        slot === 'http' ? this.httpCapacity : this.capacity,
        slot,
        this.backlog,
      );
    }

    const attempt: LiveAttempt = {
      request,
      slot,
      queued: !startNow,
      startedAt: new Date(this.clock.now()).toISOString(),
      startedMono: this.clock.monotonic(),
      pgid: null,
      stop: null,
      abort: new AbortController(),
      log: null,
      done: Promise.resolve(undefined as unknown as AttemptResult),
      timer: null,
      killing: null,
    };
    // Opened now, not when the process starts, so a follower may attach right after dispatch.
    if (request.task.type !== 'noop') attempt.log = this.opts.logs.open(request.attemptId);
    this.live.set(request.attemptId, attempt);
    if (attempt.queued) {
      const done = new Promise<AttemptResult>((resolve) => {
        attempt.release = resolve;
      });
      attempt.done = done;
      this.waiting[slot as 'process' | 'http'].push(attempt);
      attempt.log?.note(`queued: no free ${slot} slot (${this.queued} attempts waiting)`);
    } else {
      this.begin(attempt);
    }
    return { accepted: true, snapshot: this.snapshot(request.attemptId) as AttemptSnapshot };
  }

  private hasFreeSlot(kind: 'process' | 'http'): boolean {
    return this.inUse[kind] < (kind === 'process' ? this.capacity : this.httpCapacity);
  }

  /** Takes the attempt's slot and starts it. */
  private begin(a: LiveAttempt): void {
    a.queued = false;
    if (a.slot !== 'none') this.inUse[a.slot] += 1;
    a.startedAt = new Date(this.clock.now()).toISOString();
    a.startedMono = this.clock.monotonic();
    this.startedCount++;
    const done = this.execute(a);
    a.done = done;
    if (a.release) done.then(a.release);
  }

  /** Starts waiting attempts while slots of their kind are free (not while draining). */
  private startWaiting(): void {
    if (this.isDraining) return;
    for (const kind of ['process', 'http'] as const) {
      const queue = this.waiting[kind];
      while (queue.length > 0 && this.hasFreeSlot(kind)) this.begin(queue.shift() as LiveAttempt);
    }
  }

  /** Ends a queued attempt without starting it (cancelled or handed back). */
  private endQueued(a: LiveAttempt, state: 'killed' | 'failed-over', reason: string): void {
    const queue = this.waiting[a.slot as 'process' | 'http'];
    const i = queue.indexOf(a);
    if (i >= 0) queue.splice(i, 1);
    a.log?.note(`${reason}; it never started`);
    a.log?.close();
    const now = new Date(this.clock.now()).toISOString();
    const result: AttemptResult = {
      attemptId: a.request.attemptId,
      state,
      exitCode: null,
      signal: null,
      httpStatus: null,
      startedAt: now,
      endedAt: now,
      durationMs: 0,
      logTail: a.log?.tail() ?? '',
      logBytes: a.log?.totalBytes ?? 0,
      logTruncated: a.log?.truncated ?? false,
      error: `${reason} (never started)`,
    };
    this.live.delete(a.request.attemptId);
    this.remember(a.request, result);
    this.emit({ type: 'finished', request: a.request, result });
    a.release?.(result);
  }

  /**
   * Hands back every queued attempt (`failed-over`: the master re-runs it elsewhere without using
   * a retry) — a draining worker does not make them wait for its running tasks.
   */
  handBackQueued(reason: string): void {
    for (const a of [...this.waiting.process, ...this.waiting.http]) {
      this.endQueued(a, 'failed-over', reason);
    }
  }

  /** Current view of an attempt, or undefined if this worker does not know it. */
  snapshot(attemptId: string): AttemptSnapshot | undefined {
    const live = this.live.get(attemptId);
    if (live) {
      return live.queued
        ? { attemptId, state: 'queued', startedAt: null, pgid: null, result: null }
        : { attemptId, state: 'running', startedAt: live.startedAt, pgid: live.pgid, result: null };
    }
    const done = this.finished.get(attemptId);
    if (done) {
      const r = done.result;
      return { attemptId, state: r.state, startedAt: r.startedAt, pgid: null, result: r };
    }
    return undefined;
  }

  /** Resolves with the attempt's result once it is final; undefined if unknown. */
  result(attemptId: string): Promise<AttemptResult> | undefined {
    const live = this.live.get(attemptId);
    if (live) return live.done;
    const done = this.finished.get(attemptId);
    return done ? Promise.resolve(done.result) : undefined;
  }

  /**
   * Kills a running attempt's process group (SIGTERM, grace, SIGKILL); its final state is
   * `killed`. Returns the snapshot, or undefined if unknown. Cancelling a finished attempt is a no-op.
   */
  cancel(attemptId: string, reason = 'cancelled by the master'): AttemptSnapshot | undefined {
    const live = this.live.get(attemptId);
    if (live?.queued) {
      this.endQueued(live, 'killed', reason);
    } else if (live) {
      this.stop(live, { kind: 'cancel', reason });
    }
    return this.snapshot(attemptId);
  }

  /**
   * A master could not tell whether its dispatch of the attempt arrived (the answer was lost):
   * before it gives the attempt to another worker it asks this one. If this worker knows the
   * attempt (running, or finished and remembered), its snapshot is the answer and nothing is
   * revoked: the master must not move it. Otherwise the attempt never starts here from a dispatch
   * with `dispatchSeq` up to this one — a copy of the lost request arriving late is refused
   * (`AttemptRevokedError`) — while a later assignment (higher seq) still starts normally.
   * Remembered in memory for this incarnation only (a new incarnation refuses dispatches
   * addressed to the old one anyway), for the last `rememberFinished` revoked ids.
   */
  revoke(attemptId: string, dispatchSeq: number): AttemptSnapshot | RevokedAttempt {
    const known = this.snapshot(attemptId);
    if (known) return known;
    const upTo = Math.max(this.revoked.get(attemptId) ?? dispatchSeq, dispatchSeq);
    // Re-inserted so the most recently revoked ids are the last to be forgotten.
    this.revoked.delete(attemptId);
    this.revoked.set(attemptId, upTo);
    const max = this.opts.rememberFinished;
    while (this.revoked.size > max) {
      this.revoked.delete(this.revoked.keys().next().value as string);
    }
    return { attemptId, state: 'revoked' };
  }

  /**
   * Stop accepting new attempts (graceful shutdown, a suspended session); running ones continue,
   * queued ones wait (`handBackQueued` gives them back).
   */
  drain(): void {
    this.isDraining = true;
  }

  /** Accept new attempts again (after a suspension or self-fencing, once the worker is registered again). */
  resume(): void {
    this.isDraining = false;
    this.startWaiting();
  }

  /**
   * Kills every running attempt and waits until all have ended; new attempts are refused until
   * `resume`. `immediate` (self-fencing): SIGKILL at once instead of SIGTERM, grace, SIGKILL — a
   * fenced worker's task must not run on while the leader re-runs it (decision 0004).
   * `handBack`: the attempts end `failed-over` instead of `killed` (the master re-runs them
   * elsewhere without using a retry), still after SIGTERM and the grace. `fenced` = `immediate`
   * and `handBack`.
   */
  async killAll(
    reason: string,
    opts: { immediate?: boolean; fenced?: boolean; handBack?: boolean } = {},
  ): Promise<void> {
    this.isDraining = true;
    const fenced = opts.fenced === true;
    const immediate = fenced || opts.immediate === true;
    const handBack = fenced || opts.handBack === true;
    // Queued ones first: none of them may start once this began.
    for (const a of [...this.waiting.process, ...this.waiting.http]) {
      this.endQueued(a, handBack ? 'failed-over' : 'killed', reason);
    }
    const all = [...this.live.values()];
    for (const a of all) this.stop(a, { kind: 'cancel', reason, immediate, handBack });
    await Promise.all(all.map((a) => a.done));
  }

  /** Resolves once nothing runs. */
  async whenIdle(): Promise<void> {
    while (this.live.size > 0) await Promise.all([...this.live.values()].map((a) => a.done));
  }

  private stop(a: LiveAttempt, why: StopReason): void {
    const immediate = why.kind === 'cancel' && why.immediate === true;
    if (a.stop) {
      // Already stopping with a grace: fencing does not wait for it.
      if (immediate && a.pgid !== null) {
        a.log?.note(
          `${(why as { reason: string }).reason}; killing the task now (SIGKILL to its process group)`,
        );
        a.killing = this.terminate(a.pgid, 0);
      }
      return;
    }
    a.stop = why;
    const what =
      why.kind === 'timeout' ? `timed out after ${formatDuration(a.request.timeoutMs ?? 0)}` : why.reason;
    a.log?.note(
      immediate
        ? `${what}; killing the task (SIGKILL to its process group at once)`
        : `${what}; stopping the task (SIGTERM to its process group, SIGKILL after ${formatDuration(this.opts.killGraceMs)})`,
    );
    a.abort.abort();
    if (a.pgid !== null) a.killing = this.terminate(a.pgid, this.graceFor(why));
  }

  private graceFor(why: StopReason): number {
    return why.kind === 'cancel' && why.immediate === true ? 0 : this.opts.killGraceMs;
  }

  /** terminateGroup that never rejects: an attempt must end even if a signal cannot be sent. */
  private terminate(pgid: number, graceMs: number): Promise<TerminationOutcome | 'error'> {
    return terminateGroup(pgid, graceMs).catch((err) => {
      this.opts.logger?.error({ err, pgid }, 'could not signal a task process group');
      return 'error' as const;
    });
  }

  private emit(e: ExecutorEvent): void {
    for (const l of this.listeners) {
      try {
        l(e);
      } catch (err) {
        this.opts.logger?.error({ err }, 'executor event listener failed');
      }
    }
  }

  private async execute(a: LiveAttempt): Promise<AttemptResult> {
    // Let submit() return before anything observable happens (events, process start).
    await Promise.resolve();
    const req = a.request;
    let outcome: {
      exitCode: number | null;
      signal: string | null;
      httpStatus: number | null;
      error: string | null;
    };
    const workDir = join(this.opts.workDir, req.attemptId);
    try {
      if (req.timeoutMs !== null) {
        a.timer = setTimeout(() => this.stop(a, { kind: 'timeout' }), req.timeoutMs);
      }
      if (req.task.type === 'noop') {
        this.emitRunning(a);
        outcome = { exitCode: null, signal: null, httpStatus: null, error: null };
      } else {
        const log = a.log as AttemptLog;
        if (req.task.type === 'http') {
          this.emitRunning(a);
          outcome = await this.runHttp(a, req.task, log);
        } else {
          mkdirSync(workDir, { recursive: true });
          let program = '/bin/sh';
          let args = ['-c', ''];
          if (req.task.type === 'shell') {
            args = ['-c', req.task.command];
          } else {
            const scriptPath = join(workDir, 'task.script');
            writeFileSync(scriptPath, req.task.source, { mode: 0o700 });
            program = req.task.interpreter;
            args = [...req.task.interpreterArgs, scriptPath, ...req.task.args];
          }
          outcome = await this.runProcess(a, program, args, workDir, log);
        }
      }
    } catch (err) {
      outcome = {
        exitCode: null,
        signal: null,
        httpStatus: null,
        error: `worker error: ${(err as Error).message}`,
      };
    } finally {
      if (a.timer) clearTimeout(a.timer);
    }
    if (a.killing) await a.killing;
    if (a.pgid !== null) this.opts.groupWatcher?.removed(a.pgid);
    if (req.task.type === 'shell' || req.task.type === 'script') {
      try {
        rmSync(workDir, { recursive: true, force: true });
      } catch (err) {
        this.opts.logger?.warn({ err, workDir }, 'could not remove an attempt work directory');
      }
    }

    const state = finalState(a.stop, outcome);
    const durationMs = Math.max(0, Math.round(this.clock.monotonic() - a.startedMono));
    a.log?.note(`attempt ${state} after ${formatDuration(durationMs)}${describeExit(outcome)}`);
    a.log?.close();
    const result: AttemptResult = {
      attemptId: req.attemptId,
      state,
      exitCode: outcome.exitCode,
      signal: outcome.signal,
      httpStatus: outcome.httpStatus,
      startedAt: a.startedAt,
      endedAt: new Date(this.clock.now()).toISOString(),
      durationMs,
      logTail: a.log?.tail() ?? '',
      logBytes: a.log?.totalBytes ?? 0,
      logTruncated: a.log?.truncated ?? false,
      error:
        a.stop?.kind === 'timeout'
          ? (outcome.error ?? `timed out after ${formatDuration(req.timeoutMs ?? 0)}`)
          : a.stop?.kind === 'cancel'
            ? a.stop.reason
            : outcome.error,
    };
    this.live.delete(req.attemptId);
    if (a.slot !== 'none') this.inUse[a.slot] -= 1;
    this.remember(req, result);
    this.emit({ type: 'finished', request: req, result });
    // The slot is free now, before the result is spooled or reported (the listeners only queue it).
    this.startWaiting();
    return result;
  }

  private emitRunning(a: LiveAttempt): void {
    const snapshot = this.snapshot(a.request.attemptId);
    if (snapshot) this.emit({ type: 'running', request: a.request, snapshot });
  }

  private remember(request: AttemptRequest, result: AttemptResult): void {
    this.finished.set(request.attemptId, { request, result });
    const max = this.opts.rememberFinished;
    while (this.finished.size > max) {
      this.finished.delete(this.finished.keys().next().value as string);
    }
  }

  private async runProcess(a: LiveAttempt, program: string, args: string[], cwd: string, log: AttemptLog) {
    const env = taskEnvironment(a.request, this.opts.baseEnv ?? process.env);
    if (a.stop) return { exitCode: null, signal: null, httpStatus: null, error: null };
    let child: ChildProcess;
    try {
      child = spawn(program, args, { cwd, env, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
    } catch (err) {
      return {
        exitCode: null,
        signal: null,
        httpStatus: null,
        error: `could not start ${program}: ${(err as Error).message}`,
      };
    }
    const exited = new Promise<{ code: number | null; signal: string | null; error: Error | null }>(
      (resolve) => {
        child.once('exit', (code, signal) => resolve({ code, signal, error: null }));
        child.once('error', (error) => resolve({ code: null, signal: null, error }));
      },
    );
    const streamsClosed = Promise.all(
      [child.stdout, child.stderr].map(
        (s) => new Promise<void>((resolve) => (s ? s.once('close', () => resolve()) : resolve())),
      ),
    );
    child.stdout?.on('data', (chunk: Buffer) => log.write(chunk));
    child.stderr?.on('data', (chunk: Buffer) => log.write(chunk));

    if (child.pid !== undefined) {
      a.pgid = child.pid;
      this.opts.groupWatcher?.added(child.pid);
      log.note(`started ${a.request.task.type} task, pid ${child.pid} (process group ${child.pid})`);
      this.emitRunning(a);
      // A cancel that arrived between submit and spawn: act on it now that there is a group.
      if (a.stop && !a.killing) a.killing = this.terminate(a.pgid, this.graceFor(a.stop));
    }
    const exit = await exited;
    // The task's own end decides its state: a timeout firing during the cleanup below must not.
    if (a.timer) clearTimeout(a.timer);
    // A SIGKILL nobody here sent: perhaps the task supervisor's, while this daemon was frozen.
    const supervisorKill =
      exit.signal === 'SIGKILL' && !a.stop && a.pgid !== null
        ? this.supervisorWord(a.pgid)
        : Promise.resolve(undefined);
    if (exit.error) {
      return {
        exitCode: null,
        signal: null,
        httpStatus: null,
        error: `could not start ${program}: ${exit.error.message}`,
      };
    }
    // The leader is gone; anything it left in its group (background jobs) goes too.
    if (a.pgid !== null) {
      const leftovers = await (a.killing ?? this.terminate(a.pgid, this.opts.killGraceMs));
      if (!a.stop && leftovers !== 'already-gone') {
        log.note(`the task left processes running in its process group; they were ${leftovers}`);
      }
    }
    // Output written just before exit may still be in the pipes; the group is gone, so they close promptly.
    await Promise.race([streamsClosed, sleep(2_000)]);
    child.stdout?.destroy();
    child.stderr?.destroy();
    const kill = await supervisorKill;
    if (kill && !a.stop) {
      // Not the task's fault: hand it back, so the master re-runs it without using a retry.
      const silent =
        kill.silentMs === null
          ? 'it lost the worker daemon'
          : kill.why === 'lease'
            ? `the worker daemon's ZooKeeper session lease ran out while the daemon did not act (no answer for ${kill.silentMs} ms: frozen or stalled)`
            : `the worker daemon did not answer it for ${kill.silentMs} ms (frozen or stalled)`;
      a.stop = {
        kind: 'cancel',
        reason: `the task supervisor killed it: ${silent}; handed back`,
        handBack: true,
      };
      log.note(`${a.stop.reason} (SIGKILL to its process group ${kill.pgid})`);
    }
    return { exitCode: exit.code, signal: exit.signal, httpStatus: null, error: null };
  }

  /**
   * The task supervisor's kill of this group, if it reports one within `supervisorWordMs`
   * (resolved as soon as it does); undefined without a watcher that reports kills.
   */
  private supervisorWord(pgid: number): Promise<SupervisorKill | undefined> {
    const watcher = this.opts.groupWatcher;
    if (!watcher?.killOf) return Promise.resolve(undefined);
    const known = watcher.killOf(pgid);
    if (known || !watcher.onKilled) return Promise.resolve(known);
    const onKilled = watcher.onKilled.bind(watcher);
    const killOf = watcher.killOf.bind(watcher);
    return new Promise((resolve) => {
      const done = (kill: SupervisorKill | undefined) => {
        clearTimeout(timer);
        unsubscribe();
        resolve(kill);
      };
      const timer = setTimeout(() => done(killOf(pgid)), this.opts.supervisorWordMs);
      const unsubscribe = onKilled((kill) => {
        if (kill.pgid === pgid) done(kill);
      });
    });
  }

  private async runHttp(a: LiveAttempt, task: HttpTask, log: AttemptLog) {
    const signals = [a.abort.signal];
    const timeout = task.requestTimeoutMs === null ? null : AbortSignal.timeout(task.requestTimeoutMs);
    if (timeout !== null) signals.push(timeout);
    log.note(`HTTP ${task.method} ${shownUrl(task.url)}`);
    try {
      const response = await callHttp(task, {
        policy: this.httpNetworks,
        signal: AbortSignal.any(signals),
        maxRedirects: this.opts.httpMaxRedirects,
        ...(this.opts.httpResolver === undefined ? {} : { resolve: this.opts.httpResolver }),
        note: (line) => log.note(line),
        onBody: (chunk) => log.write(chunk),
      });
      log.note(`HTTP ${response.status} ${response.statusText}`);
      const ok =
        task.expectedStatus.length === 0
          ? response.status >= 200 && response.status < 300
          : task.expectedStatus.includes(response.status);
      const expected = task.expectedStatus.length === 0 ? '2xx' : task.expectedStatus.join(', ');
      return {
        exitCode: null,
        signal: null,
        httpStatus: response.status,
        error: ok ? null : `HTTP status ${response.status}, expected ${expected}`,
      };
    } catch (err) {
      const e = err as Error;
      // Aborted by our own timeout or cancel: the stop reason, not the abort, is the story.
      if (a.stop) return { exitCode: null, signal: null, httpStatus: null, error: null };
      const timedOut = timeout?.aborted === true;
      const message = timedOut
        ? `HTTP request timed out after ${formatDuration(task.requestTimeoutMs ?? 0)}`
        : e instanceof HttpTargetRefusedError
          ? e.message
          : `HTTP request failed: ${e.message}${e.cause instanceof Error ? ` (${e.cause.message})` : ''}`;
      log.note(message);
      if (timedOut) a.stop = { kind: 'timeout' };
      return { exitCode: null, signal: null, httpStatus: null, error: message };
    }
  }
}

function finalState(
  stop: StopReason | null,
  outcome: { exitCode: number | null; signal: string | null; error: string | null },
): FinalAttemptState {
  if (stop?.kind === 'timeout') return 'timed-out';
  if (stop?.kind === 'cancel') return stop.handBack === true ? 'failed-over' : 'killed';
  if (outcome.error !== null) return 'failed';
  if (outcome.signal !== null) return 'failed';
  return outcome.exitCode === 0 || outcome.exitCode === null ? 'succeeded' : 'failed';
}

function describeExit(o: { exitCode: number | null; signal: string | null; error: string | null }): string {
  const parts: string[] = [];
  if (o.exitCode !== null) parts.push(`exit code ${o.exitCode}`);
  if (o.signal !== null) parts.push(`signal ${o.signal}`);
  if (o.error !== null) parts.push(o.error);
  return parts.length > 0 ? ` (${parts.join(', ')})` : '';
}

/** The task's URL for its log: without a user name and password (the log is served and stored). */
function shownUrl(text: string): string {
  try {
    return shown(new URL(text));
  } catch {
    return text;
  }
}
