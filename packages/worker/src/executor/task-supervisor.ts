import { type ChildProcess, spawn } from 'node:child_process';
import type { Logger } from '@sched/core';

/**
 * The task supervisor (docs/design.md#zombies, decision 0004): a small process, separate from the worker
 * daemon and in its own process group, that knows every running task's process group and SIGKILLs
 * them all when the daemon can no longer be trusted to do it itself:
 *
 * - the daemon's ZooKeeper session lease runs out while the daemon does not act on it (frozen by
 *   SIGSTOP, a long GC or a blocked event loop — perhaps just before the deadline, in a partition
 *   that had already silenced ZooKeeper). Every message from the daemon carries the lease's
 *   deadline (`d`); the supervisor kills at that deadline, not some time after the daemon's last
 *   word, because the server may expire the session from then on and the leader re-runs the tasks
 *   a failover delay later (docs/design.md#failover-delay);
 * - the daemon is silent for longer than `timeoutMs` (the session timeout: the fallback when no
 *   deadline is known yet);
 * - the daemon died (kill -9, crash): the supervisor's stdin reaches EOF; it kills the task
 *   groups and exits, so no orphaned task keeps running next to its re-run.
 *
 * Protocol: JSON lines on the supervisor's stdin — `{"t":"hb"}` (heartbeat), `{"t":"add","pgid":N}`,
 * `{"t":"remove","pgid":N}`, `{"t":"timeout","ms":N}` (the session timeout changed: ZooKeeper
 * granted another), `{"t":"stop"}`. Any line counts as a heartbeat, and any line may carry `"d"`:
 * the lease deadline, in milliseconds of the host's monotonic clock (CLOCK_MONOTONIC, which
 * `process.hrtime` reads in both processes); it replaces the previous one. On its stdout: `ready`
 * once it listens, then one JSON line per kill,
 * `{"t":"killed","pgids":[N,…],"silentMs":N|null,"why":"lease"|"silent"|"gone"}` (`silentMs`: how
 * long the daemon had not answered; null when it is gone), so a daemon that comes back from a
 * freeze knows which of its tasks died by the supervisor's hand, not their own (the
 * human-readable line goes to stderr, for the log). The supervisor's
 * code is a self-contained script run with `node -e`, so it needs no build step and no module
 * resolution. Linux process groups; a task that leaves its group (setsid) escapes it.
 */
const SUPERVISOR_SOURCE = String.raw`
let timeoutMs = Number(process.argv[1]);
const groups = new Set();
const { performance } = require('node:perf_hooks');
const monotonicMs = () => Number(process.hrtime.bigint() / 1000n) / 1000;
let last = performance.now();
let deadline = null;
let deadlineTimer;
let ticker;
let buf = '';
process.stdout.on('error', () => {});
function killAll(text, silentMs, why) {
  if (groups.size === 0) return;
  for (const g of groups) { try { process.kill(-g, 'SIGKILL'); } catch {} }
  process.stderr.write('[sched task supervisor] ' + text + ': SIGKILLed ' + groups.size + ' task process group(s): ' + [...groups].join(' ') + '\n');
  process.stdout.write(JSON.stringify({ t: 'killed', pgids: [...groups], silentMs: silentMs === undefined ? null : Math.round(silentMs), why }) + '\n');
  groups.clear();
}
function check() {
  const silent = performance.now() - last;
  const late = deadline === null ? -1 : monotonicMs() - deadline;
  if (late >= 0) killAll("the worker daemon's ZooKeeper session lease ran out " + Math.round(late) + ' ms ago and the daemon has not answered for ' + Math.round(silent) + ' ms', silent, 'lease');
  else if (silent > timeoutMs) killAll('no heartbeat from the worker daemon for ' + Math.round(silent) + ' ms', silent, 'silent');
}
function startTicker() {
  clearInterval(ticker);
  ticker = setInterval(check, Math.max(20, Math.min(200, Math.floor(timeoutMs / 4))));
}
function armDeadline() {
  clearTimeout(deadlineTimer);
  if (deadline !== null) deadlineTimer = setTimeout(check, Math.max(0, Math.ceil(deadline - monotonicMs())));
}
process.stdin.setEncoding('utf8');
process.stdin.on('data', (chunk) => {
  last = performance.now();
  buf += chunk;
  for (let i = buf.indexOf('\n'); i >= 0; i = buf.indexOf('\n')) {
    const line = buf.slice(0, i);
    buf = buf.slice(i + 1);
    let m;
    try { m = JSON.parse(line); } catch { continue; }
    if (typeof m.d === 'number' && Number.isFinite(m.d)) { deadline = m.d; armDeadline(); }
    if (m.t === 'add' && Number.isInteger(m.pgid) && m.pgid > 1) groups.add(m.pgid);
    else if (m.t === 'remove') groups.delete(m.pgid);
    else if (m.t === 'timeout' && Number.isFinite(m.ms) && m.ms > 0) { timeoutMs = m.ms; startTicker(); }
    else if (m.t === 'stop') { groups.clear(); process.exit(0); }
  }
  check();
});
process.stdin.on('end', () => { killAll('the worker daemon is gone', undefined, 'gone'); process.exit(0); });
process.stdin.on('error', () => { killAll('lost the worker daemon', undefined, 'gone'); process.exit(0); });
startTicker();
process.stdout.write('ready\n');
`;

export interface TaskSupervisorOptions {
  /**
   * Silence after which every task group is killed; use the ZooKeeper session timeout — the
   * negotiated one once known (`setTimeoutMs`).
   */
  timeoutMs: number;
  /** How often the daemon says it is alive. @defaultValue timeoutMs / 5 */
  heartbeatMs?: number;
  /**
   * How much longer the daemon's ZooKeeper session lease certainly holds, in ms (≤ 0: it does
   * not), or undefined while there is no session yet (`ZkSession.leaseRemainingMs`). With it,
   * every message carries the lease deadline and the supervisor kills every task group at that
   * deadline if the daemon has not acted by then (docs/design.md#zombies).
   */
  leaseRemainingMs?: () => number | undefined;
  logger?: Logger;
}

/** A task process group the supervisor SIGKILLed. */
export interface SupervisorKill {
  pgid: number;
  /** How long the daemon had not answered the supervisor; null if the supervisor lost it (EOF). */
  silentMs: number | null;
  /**
   * Why: the daemon's session lease ran out while it did not act (`lease`), it was silent for the
   * supervisor's timeout (`silent`), or it is gone (`gone`). Absent from an older supervisor.
   */
  why?: 'lease' | 'silent' | 'gone';
}

/** The host's monotonic clock (CLOCK_MONOTONIC) in ms: the same in the daemon and the supervisor process. */
function hostMonotonicMs(): number {
  return Number(process.hrtime.bigint() / 1000n) / 1000;
}

/**
 * What the executor tells the supervisor, and what it learns from it (a narrow interface, easy
 * to fake). `killOf` and `onKilled` are optional: a watcher without them kills nothing.
 */
export interface ProcessGroupWatcher {
  added(pgid: number): void;
  removed(pgid: number): void;
  /** The supervisor's kill of this group since it was last `added`, if any. */
  killOf?(pgid: number): SupervisorKill | undefined;
  /** Calls `listener` for every group the supervisor kills from now on; returns the unsubscribe. */
  onKilled?(listener: (kill: SupervisorKill) => void): () => void;
}

/** How many killed groups the daemon side remembers (oldest forgotten first). */
const REMEMBER_KILLS = 1_024;

export class TaskSupervisor implements ProcessGroupWatcher {
  private child: ChildProcess | undefined;
  private timer: NodeJS.Timeout | undefined;
  private stopped = false;
  private currentTimeoutMs: number;
  private readonly kills = new Map<number, SupervisorKill>();
  private readonly killListeners = new Set<(kill: SupervisorKill) => void>();

  private constructor(private readonly opts: TaskSupervisorOptions) {
    this.currentTimeoutMs = opts.timeoutMs;
  }

  /** Starts the supervisor process; resolves once it listens. */
  static async start(opts: TaskSupervisorOptions): Promise<TaskSupervisor> {
    assertTimeout(opts.timeoutMs);
    const s = new TaskSupervisor(opts);
    await s.spawn();
    return s;
  }

  /** Pid of the supervisor process. */
  get pid(): number | undefined {
    return this.child?.pid;
  }

  /** The silence after which the supervisor kills every task group. */
  get timeoutMs(): number {
    return this.currentTimeoutMs;
  }

  /**
   * Changes the silence timeout (ZooKeeper granted a session timeout other than the one asked
   * for); the heartbeat interval follows unless it was set explicitly.
   */
  setTimeoutMs(ms: number): void {
    assertTimeout(ms);
    if (ms === this.currentTimeoutMs) return;
    this.currentTimeoutMs = ms;
    this.send({ t: 'timeout', ms });
    this.opts.logger?.info({ timeoutMs: ms }, 'task supervisor timeout set to the granted session timeout');
    this.scheduleHeartbeat();
  }

  /** Sends the current lease deadline now (the session status changed: a new session, LOST). */
  refresh(): void {
    this.send({ t: 'hb' });
    this.scheduleHeartbeat();
  }

  added(pgid: number): void {
    // A reused pgid is a new group: an old kill of the same number is not its story.
    this.kills.delete(pgid);
    this.send({ t: 'add', pgid });
  }

  removed(pgid: number): void {
    this.kills.delete(pgid);
    this.send({ t: 'remove', pgid });
  }

  killOf(pgid: number): SupervisorKill | undefined {
    return this.kills.get(pgid);
  }

  /** Whether the supervisor SIGKILLed this process group (since it was last added or removed). */
  killedBySupervisor(pgid: number): boolean {
    return this.kills.has(pgid);
  }

  onKilled(listener: (kill: SupervisorKill) => void): () => void {
    this.killListeners.add(listener);
    return () => this.killListeners.delete(listener);
  }

  /** Ends the supervisor without killing anything (graceful stop: the executor killed its tasks itself). */
  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    clearTimeout(this.timer);
    const child = this.child;
    if (!child || child.exitCode !== null) return;
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    this.send({ t: 'stop' });
    child.stdin?.end();
    await Promise.race([exited, new Promise((r) => setTimeout(r, 2_000))]);
    if (child.exitCode === null) child.kill('SIGKILL');
  }

  private async spawn(): Promise<void> {
    const child = spawn(process.execPath, ['-e', SUPERVISOR_SOURCE, String(this.opts.timeoutMs)], {
      // Its own process group: a signal to the daemon's group (kill -9 of the group, SIGSTOP of
      // the group) must not reach the supervisor, whose job is to outlive and outwatch the daemon.
      detached: true,
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    this.child = child;
    child.stdin?.on('error', () => {}); // a dead supervisor is reported through 'exit'
    child.stderr?.on('data', (d: Buffer) => this.opts.logger?.warn(d.toString().trim()));
    child.once('exit', (code, signal) => {
      if (!this.stopped) this.opts.logger?.error({ code, signal }, 'the task supervisor exited unexpectedly');
    });
    child.unref();
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Error('the task supervisor did not start within 10 s')),
        10_000,
      );
      let buf = '';
      child.stdout?.setEncoding('utf8');
      child.stdout?.on('data', (chunk: string) => {
        buf += chunk;
        for (let i = buf.indexOf('\n'); i >= 0; i = buf.indexOf('\n')) {
          const line = buf.slice(0, i);
          buf = buf.slice(i + 1);
          if (line === 'ready') {
            clearTimeout(timer);
            resolve();
          } else {
            this.onLine(line);
          }
        }
      });
      child.once('error', (err) => {
        clearTimeout(timer);
        reject(err);
      });
    });
    (child.stdout as unknown as { unref?: () => void })?.unref?.();
    this.refresh();
  }

  /**
   * The next heartbeat: every `heartbeatMs`, but sooner while the lease nears its deadline (half
   * the time left, at least 20 ms), so the supervisor always hears of a renewed lease before the
   * deadline it knows of passes — a live daemon's tasks are never killed for a stale deadline.
   */
  private scheduleHeartbeat(): void {
    clearTimeout(this.timer);
    if (this.stopped) return;
    let delay = this.opts.heartbeatMs ?? Math.max(20, Math.floor(this.currentTimeoutMs / 5));
    const remaining = this.opts.leaseRemainingMs?.();
    if (remaining !== undefined && remaining > 0) delay = Math.min(delay, Math.max(20, remaining / 2));
    this.timer = setTimeout(() => this.refresh(), delay);
    this.timer.unref();
  }

  /** A line from the supervisor's stdout after `ready`: a kill report. */
  private onLine(line: string): void {
    let m: unknown;
    try {
      m = JSON.parse(line);
    } catch {
      this.opts.logger?.warn({ line }, 'unreadable line from the task supervisor');
      return;
    }
    const msg = m as { t?: unknown; pgids?: unknown; silentMs?: unknown; why?: unknown };
    if (msg.t !== 'killed' || !Array.isArray(msg.pgids)) return;
    const silentMs = typeof msg.silentMs === 'number' ? msg.silentMs : null;
    const why = msg.why === 'lease' || msg.why === 'silent' || msg.why === 'gone' ? msg.why : undefined;
    for (const pgid of msg.pgids) {
      if (!Number.isInteger(pgid)) continue;
      const kill: SupervisorKill = { pgid: pgid as number, silentMs, ...(why ? { why } : {}) };
      this.kills.delete(kill.pgid);
      this.kills.set(kill.pgid, kill);
      while (this.kills.size > REMEMBER_KILLS) this.kills.delete(this.kills.keys().next().value as number);
      for (const l of this.killListeners) {
        try {
          l(kill);
        } catch (err) {
          this.opts.logger?.error({ err }, 'task supervisor kill listener failed');
        }
      }
    }
  }

  /** Writes one line; with a lease, it carries the lease's deadline on the host's monotonic clock. */
  private send(message: object): void {
    const stdin = this.child?.stdin;
    if (!stdin || stdin.destroyed || !stdin.writable) return;
    const remaining = this.opts.leaseRemainingMs?.();
    const line = remaining === undefined ? message : { ...message, d: hostMonotonicMs() + remaining };
    stdin.write(`${JSON.stringify(line)}\n`);
  }
}

function assertTimeout(ms: number): void {
  if (!Number.isFinite(ms) || ms < 100) {
    throw new RangeError(`task supervisor timeoutMs must be at least 100, got ${ms}`);
  }
}
