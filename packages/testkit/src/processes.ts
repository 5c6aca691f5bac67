// Child processes for tests: daemons under test (masters, workers) and the servers the
// harness runs (ZooKeeper, PostgreSQL). Each child:
//   - is spawned detached, in its own process group, so signals reach the whole tree
//     (a worker's task processes, postgres's backends) and never the test runner;
//   - has stdout+stderr captured in memory (for `waitForOutput`) and optionally teed to a
//     log file that is kept for debugging;
//   - is SIGKILLed when the test file ends (see cleanup.ts), even when a test failed.

import { type ChildProcess, spawn } from 'node:child_process';
import { createWriteStream, readdirSync, readFileSync, type WriteStream } from 'node:fs';
import { registerCleanup, trackChild, untrackChild } from './cleanup.js';
import { HarnessError } from './errors.js';
import { timing } from './timing.js';

export interface SpawnOptions {
  env?: Record<string, string | undefined>;
  /** Replace the environment instead of extending `process.env`. */
  replaceEnv?: boolean;
  cwd?: string;
  /** Shown in error messages and output prefixes; defaults to the command's base name. */
  name?: string;
  /** Also append everything the child writes to this file. */
  logFile?: string;
  /** Run as this user/group (only when the harness runs as root). */
  uid?: number;
  gid?: number;
  /** Spawn in its own process group and signal the group (default true). */
  group?: boolean;
  /** Echo the child's output to the test's stderr, prefixed with its name (default: env SCHED_TEST_ECHO=1). */
  echo?: boolean;
}

export interface ChildExit {
  code: number | null;
  signal: string | null;
}

export interface ChildHandle {
  readonly pid: number;
  readonly name: string;
  /** Everything written so far to stdout and stderr, interleaved in arrival order. */
  output(): string;
  /** Resolves with the first match of `re` in the output (past or future); rejects on timeout or exit. */
  waitForOutput(re: RegExp, timeoutMs?: number): Promise<string>;
  /**
   * Sends a signal to the child's whole process group (when spawned as a group, the
   * default) or, with `'leader'`, to the child process alone (e.g. a SIGTERM the daemon
   * must pass on to its own task processes).
   */
  signal(sig: NodeJS.Signals, target?: 'group' | 'leader'): void;
  /** SIGKILL and wait until it has exited. */
  kill9(): Promise<ChildExit>;
  /** Sends `sig` (default SIGTERM), then SIGKILL after `graceMs`; resolves when it has exited. */
  stop(graceMs?: number, sig?: NodeJS.Signals): Promise<ChildExit>;
  /**
   * SIGSTOP: the process is frozen (a GC pause, a stuck VM) but its sockets stay open.
   * Returns once every thread of the child is stopped (see `waitUntilStopped`).
   */
  pause(): void;
  /** SIGCONT. */
  resume(): void;
  /** True until the child has exited. */
  readonly running: boolean;
  readonly exited: Promise<ChildExit>;
}

const maxCapturedChars = 8 * 1024 * 1024;

export function spawnProcess(cmd: string, args: string[], opts: SpawnOptions = {}): ChildHandle {
  const name = opts.name ?? cmd.split('/').pop() ?? cmd;
  const group = opts.group ?? true;
  const echo = opts.echo ?? process.env.SCHED_TEST_ECHO === '1';
  const env = opts.replaceEnv ? { ...opts.env } : { ...process.env, ...opts.env };
  const child: ChildProcess = spawn(cmd, args, {
    cwd: opts.cwd,
    env,
    detached: group,
    stdio: ['ignore', 'pipe', 'pipe'],
    ...(opts.uid !== undefined ? { uid: opts.uid } : {}),
    ...(opts.gid !== undefined ? { gid: opts.gid } : {}),
  });
  if (child.pid === undefined) {
    // spawn failures (ENOENT, EACCES) are reported asynchronously; surface them clearly.
    const failed = new Promise<never>((_, reject) => {
      child.once('error', (error) =>
        reject(new HarnessError('TESTKIT_SPAWN', `cannot spawn ${name} (${cmd})`, { cause: error })),
      );
    });
    failed.catch(() => undefined);
    throw new HarnessError(
      'TESTKIT_SPAWN',
      `cannot spawn ${name}: ${cmd} ${args.join(' ')} (no pid; is the command installed?)`,
    );
  }
  const pid = child.pid;
  trackChild(pid, group);

  let captured = '';
  let log: WriteStream | undefined;
  if (opts.logFile) log = createWriteStream(opts.logFile, { flags: 'a' });
  const listeners = new Set<() => void>();
  const onChunk = (chunk: Buffer): void => {
    const text = chunk.toString('utf8');
    captured += text;
    if (captured.length > maxCapturedChars) captured = captured.slice(captured.length - maxCapturedChars / 2);
    log?.write(chunk);
    if (echo) process.stderr.write(text.replace(/^(?=.)/gm, `[${name}] `));
    for (const listener of listeners) listener();
  };
  child.stdout?.on('data', onChunk);
  child.stderr?.on('data', onChunk);

  let running = true;
  const exited = new Promise<ChildExit>((resolve) => {
    child.once('exit', (code, signal) => {
      running = false;
      untrackChild(pid);
      resolve({ code, signal });
    });
    child.once('error', () => {
      // An error after spawn (e.g. kill failure) does not end the process; exit will follow.
    });
  });
  // Streams may deliver their last chunks after 'exit'; close the log when they are done.
  child.once('close', () => {
    for (const listener of listeners) listener();
    log?.end();
  });

  const sendSignal = (sig: NodeJS.Signals, target: 'group' | 'leader' = 'group'): void => {
    if (!running) return;
    try {
      process.kill(group && target === 'group' ? -pid : pid, sig);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'ESRCH') throw error;
    }
  };

  const handle: ChildHandle = {
    pid,
    name,
    output: () => captured,
    waitForOutput(pattern: RegExp, timeoutMs = timing.forWaiting()): Promise<string> {
      // A global or sticky regex keeps state between exec calls; match from the start each time.
      const re = new RegExp(pattern.source, pattern.flags.replace(/[gy]/g, ''));
      return new Promise<string>((resolve, reject) => {
        const check = (): boolean => {
          const match = re.exec(captured);
          if (match) {
            finish();
            resolve(match[0]);
            return true;
          }
          return false;
        };
        const onExit = (result: ChildExit): void => {
          // Give the streams a moment to flush the last lines before declaring failure.
          setTimeout(() => {
            if (check()) return;
            finish();
            reject(
              new Error(
                `${name} (pid ${pid}) exited (code ${result.code}, signal ${result.signal}) before printing ${re}; output tail:\n${tail(captured)}`,
              ),
            );
          }, 50);
        };
        const timer = setTimeout(() => {
          finish();
          reject(
            new Error(
              `${name} (pid ${pid}) did not print ${re} within ${timeoutMs} ms; output tail:\n${tail(captured)}`,
            ),
          );
        }, timeoutMs);
        const finish = (): void => {
          clearTimeout(timer);
          listeners.delete(listener);
        };
        const listener = (): void => {
          check();
        };
        if (check()) return;
        listeners.add(listener);
        exited.then(onExit);
      });
    },
    signal: sendSignal,
    async kill9() {
      sendSignal('SIGKILL');
      return exited;
    },
    async stop(graceMs = timing.forWaiting(), sig: NodeJS.Signals = 'SIGTERM') {
      // A paused child would not act on the signal until continued.
      sendSignal(sig);
      sendSignal('SIGCONT');
      const timer = setTimeout(() => sendSignal('SIGKILL'), graceMs);
      const result = await exited;
      clearTimeout(timer);
      return result;
    },
    pause: () => {
      sendSignal('SIGSTOP');
      if (running) waitUntilStopped(pid);
    },
    resume: () => sendSignal('SIGCONT'),
    get running() {
      return running;
    },
    exited,
  };

  registerCleanup(`kill ${name} (pid ${pid})`, async () => {
    if (!running) return;
    // A paused child ignores SIGTERM until continued; SIGKILL works regardless.
    sendSignal('SIGKILL');
    await exited;
  });
  return handle;
}

/**
 * Blocks (briefly, synchronously) until every thread of `pid` is in the stopped state.
 * kill() returns as soon as SIGSTOP is pending; the kernel stops the threads only when one
 * of them gets a CPU to handle it, and on a busy machine the others can meanwhile still
 * serve a request — seen with ZooKeeper answering 'paused'. Gives up silently after
 * `timeoutMs` (or off Linux).
 */
export function waitUntilStopped(pid: number, timeoutMs = 2000): boolean {
  const deadline = performance.now() + timeoutMs;
  const pauseCell = new Int32Array(new SharedArrayBuffer(4));
  for (;;) {
    let allStopped = true;
    try {
      for (const tid of readdirSync(`/proc/${pid}/task`)) {
        const stat = readFileSync(`/proc/${pid}/task/${tid}/stat`, 'utf8');
        const state = stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
        if (state !== 'T' && state !== 't' && state !== 'Z' && state !== 'X') {
          allStopped = false;
          break;
        }
      }
    } catch {
      return false; // gone, or no /proc
    }
    if (allStopped) return true;
    if (performance.now() > deadline) return false;
    Atomics.wait(pauseCell, 0, 0, 1);
  }
}

function tail(text: string, lines = 30): string {
  return text.split('\n').slice(-lines).join('\n');
}

/**
 * True when a process with this pid is alive: the signal-0 probe succeeds (EPERM also means
 * it exists) and it is not a zombie (dead, waiting to be reaped by its parent or init, which
 * on some machines happens only every few seconds).
 */
export function processExists(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
  try {
    return !/^\d+ \(.*\) Z/s.test(readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return false;
  }
}
