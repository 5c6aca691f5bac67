import { type ChildProcess, spawn } from 'node:child_process';
import type { Logger } from '@sched/core';

/**
 * The task supervisor (architecture §8, decision 0004): a small process, separate from the worker
 * daemon and in its own process group, that knows every running task's process group and SIGKILLs
 * them all when the daemon stops talking to it:
 *
 * - the daemon is frozen (SIGSTOP, a long GC or a blocked event loop) for longer than
 *   `timeoutMs` — by then its ZooKeeper session is as good as expired and the leader is about to
 *   re-run its tasks, so they must be dead;
 * - the daemon died (kill -9, crash): the supervisor's stdin reaches EOF; it kills the task
 *   groups and exits, so no orphaned task keeps running next to its re-run.
 *
 * Protocol: JSON lines on the supervisor's stdin — `{"t":"hb"}` (heartbeat), `{"t":"add","pgid":N}`,
 * `{"t":"remove","pgid":N}`, `{"t":"stop"}`. Any line counts as a heartbeat. The supervisor's
 * code is a self-contained script run with `node -e`, so it needs no build step and no module
 * resolution. Linux process groups; a task that leaves its group (setsid) escapes it.
 */
const SUPERVISOR_SOURCE = String.raw`
const timeoutMs = Number(process.argv[1]);
const tickMs = Math.max(20, Math.min(200, Math.floor(timeoutMs / 4)));
const groups = new Set();
const { performance } = require('node:perf_hooks');
let last = performance.now();
let buf = '';
function killAll(why) {
  if (groups.size === 0) return;
  for (const g of groups) { try { process.kill(-g, 'SIGKILL'); } catch {} }
  process.stderr.write('[sched task supervisor] ' + why + ': SIGKILLed ' + groups.size + ' task process group(s): ' + [...groups].join(' ') + '\n');
  groups.clear();
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
    if (m.t === 'add' && Number.isInteger(m.pgid) && m.pgid > 1) groups.add(m.pgid);
    else if (m.t === 'remove') groups.delete(m.pgid);
    else if (m.t === 'stop') { groups.clear(); process.exit(0); }
  }
});
process.stdin.on('end', () => { killAll('the worker daemon is gone'); process.exit(0); });
process.stdin.on('error', () => { killAll('lost the worker daemon'); process.exit(0); });
setInterval(() => {
  const silent = performance.now() - last;
  if (silent > timeoutMs) killAll('no heartbeat from the worker daemon for ' + Math.round(silent) + ' ms');
}, tickMs);
process.stdout.write('ready\n');
`;

export interface TaskSupervisorOptions {
  /** Silence after which every task group is killed; use the ZooKeeper session timeout. */
  timeoutMs: number;
  /** How often the daemon says it is alive. @defaultValue timeoutMs / 5 */
  heartbeatMs?: number;
  logger?: Logger;
}

/** What the executor tells the supervisor (a narrow interface, easy to fake). */
export interface ProcessGroupWatcher {
  added(pgid: number): void;
  removed(pgid: number): void;
}

export class TaskSupervisor implements ProcessGroupWatcher {
  private child: ChildProcess | undefined;
  private timer: NodeJS.Timeout | undefined;
  private stopped = false;

  private constructor(private readonly opts: TaskSupervisorOptions) {}

  /** Starts the supervisor process; resolves once it listens. */
  static async start(opts: TaskSupervisorOptions): Promise<TaskSupervisor> {
    if (!Number.isFinite(opts.timeoutMs) || opts.timeoutMs < 100) {
      throw new RangeError(`task supervisor timeoutMs must be at least 100, got ${opts.timeoutMs}`);
    }
    const s = new TaskSupervisor(opts);
    await s.spawn();
    return s;
  }

  /** Pid of the supervisor process. */
  get pid(): number | undefined {
    return this.child?.pid;
  }

  added(pgid: number): void {
    this.send({ t: 'add', pgid });
  }

  removed(pgid: number): void {
    this.send({ t: 'remove', pgid });
  }

  /** Ends the supervisor without killing anything (graceful stop: the executor killed its tasks itself). */
  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    clearInterval(this.timer);
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
      child.stdout?.once('data', () => {
        clearTimeout(timer);
        resolve();
      });
      child.once('error', (err) => {
        clearTimeout(timer);
        reject(err);
      });
    });
    (child.stdout as unknown as { unref?: () => void })?.unref?.();
    const heartbeatMs = this.opts.heartbeatMs ?? Math.max(20, Math.floor(this.opts.timeoutMs / 5));
    this.timer = setInterval(() => this.send({ t: 'hb' }), heartbeatMs);
    this.timer.unref();
  }

  private send(message: object): void {
    const stdin = this.child?.stdin;
    if (!stdin || stdin.destroyed || !stdin.writable) return;
    stdin.write(`${JSON.stringify(message)}\n`);
  }
}
