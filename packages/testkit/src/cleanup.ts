// Everything the harness starts must be gone when the test file ends, even when a test
// fails or the worker process is torn down. Two layers:
//   1. inside a vitest worker, one `afterAll` hook (registered when this module is first
//      evaluated, i.e. while the test file is being collected) runs the async cleanups in
//      reverse order of registration: graceful stops, then removal of temp data;
//   2. a synchronous backstop on process `exit` (and SIGTERM/SIGINT/SIGHUP) that SIGKILLs
//      every child still alive, for the cases where the hook never ran;
//   3. for a worker that is itself SIGKILLed (no handler runs), a tiny shell watchdog per
//      process polls the owner every second and then SIGKILLs the children listed in a pid
//      file — only those whose start time still matches, so a recycled pid is never hit.
// Vitest runs each test file in a fresh fork (isolate), so "end of the worker process" and
// "end of the test file" are the same moment.

import { spawn } from 'node:child_process';
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll } from 'vitest';
import { testkitRoot } from './temp-dirs.js';

type AsyncCleanup = () => Promise<void> | void;

const asyncCleanups: { name: string; fn: AsyncCleanup }[] = [];
// Kept on globalThis: if a worker process evaluates this module more than once (one module
// graph per test file), the single exit backstop must still see every live child.
const globalState = globalThis as Record<symbol, unknown>;
const liveChildrenKey = Symbol.for('sched.testkit.liveChildren');
if (!globalState[liveChildrenKey]) globalState[liveChildrenKey] = new Map<number, { group: boolean }>();
const liveChildren = globalState[liveChildrenKey] as Map<number, { group: boolean }>;

/** Registers an async cleanup run at the end of the test file (reverse order). Returns an unregister function. */
export function registerCleanup(name: string, fn: AsyncCleanup): () => void {
  const entry = { name, fn };
  asyncCleanups.push(entry);
  return () => {
    const index = asyncCleanups.indexOf(entry);
    if (index >= 0) asyncCleanups.splice(index, 1);
  };
}

/** Runs (and forgets) every registered cleanup, newest first; errors are collected, not thrown one by one. */
export async function runCleanups(): Promise<void> {
  const errors: unknown[] = [];
  while (asyncCleanups.length > 0) {
    const entry = asyncCleanups.pop()!;
    try {
      await entry.fn();
    } catch (error) {
      errors.push(new Error(`testkit cleanup '${entry.name}' failed`, { cause: error }));
    }
  }
  killAllChildrenNow();
  if (errors.length === 1) throw errors[0];
  if (errors.length > 1) throw new AggregateError(errors, 'testkit cleanups failed');
}

/** Tracks a live child so the synchronous backstop can SIGKILL it (its process group when `group`). */
export function trackChild(pid: number, group: boolean): void {
  liveChildren.set(pid, { group });
  writeWatchList();
}

export function untrackChild(pid: number): void {
  liveChildren.delete(pid);
  writeWatchList();
}

const watchdogScript = `
owner=$1; list=$2
while kill -0 "$owner" 2>/dev/null; do sleep 1; done
[ -f "$list" ] || exit 0
while read -r pid start group; do
  [ -r "/proc/$pid/stat" ] || continue
  now=$(sed 's/.*) //' "/proc/$pid/stat" | cut -d' ' -f20)
  [ "$now" = "$start" ] || continue
  # dash's kill takes no "--": a negative pid right after the signal means the group.
  if [ "$group" = 1 ]; then kill -9 "-$pid" 2>/dev/null; else kill -9 "$pid" 2>/dev/null; fi
done < "$list"
rm -f "$list"
`;

const watchKey = Symbol.for('sched.testkit.watchList');

/** The start time of a process (clock ticks since boot), which with the pid identifies it. */
function startTimeOf(pid: number): string | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19];
  } catch {
    return undefined;
  }
}

function writeWatchList(): void {
  if (process.platform !== 'linux') return;
  let state = globalState[watchKey] as { file: string; starts: Map<number, string> } | undefined;
  if (!state) {
    if (liveChildren.size === 0) return;
    const dir = join(testkitRoot(), 'watch');
    mkdirSync(dir, { recursive: true });
    state = { file: join(dir, `${process.pid}.pids`), starts: new Map() };
    globalState[watchKey] = state;
    const watchdog = spawn(
      'sh',
      ['-c', watchdogScript, 'testkit-watchdog', String(process.pid), state.file],
      {
        detached: true,
        stdio: 'ignore',
      },
    );
    watchdog.unref();
  }
  const lines: string[] = [];
  for (const [pid, { group }] of liveChildren) {
    let start = state.starts.get(pid);
    if (start === undefined) {
      start = startTimeOf(pid);
      if (start === undefined) continue;
      state.starts.set(pid, start);
    }
    lines.push(`${pid} ${start} ${group ? 1 : 0}`);
  }
  for (const pid of state.starts.keys()) if (!liveChildren.has(pid)) state.starts.delete(pid);
  try {
    if (lines.length === 0) rmSync(state.file, { force: true });
    else writeFileSync(state.file, `${lines.join('\n')}\n`);
  } catch {
    // the watchdog is a last resort; never fail a test over it
  }
}

/** SIGKILLs every tracked child right now (synchronous: safe inside an `exit` handler). */
function killAllChildrenNow(): void {
  for (const [pid, { group }] of liveChildren) {
    try {
      process.kill(group ? -pid : pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }
  liveChildren.clear();
  writeWatchList();
}

function installBackstop(): void {
  const marker = Symbol.for('sched.testkit.backstop');
  const globals = globalThis as Record<symbol, unknown>;
  if (globals[marker]) return;
  globals[marker] = true;
  process.on('exit', killAllChildrenNow);
  for (const signal of ['SIGTERM', 'SIGINT', 'SIGHUP'] as const) {
    const onSignal = (): void => {
      killAllChildrenNow();
      // Keep the default behaviour (terminate) when nobody else handles the signal.
      if (process.listenerCount(signal) === 1) {
        process.removeListener(signal, onSignal);
        process.kill(process.pid, signal);
      }
    };
    process.on(signal, onSignal);
  }
}

installBackstop();

/** True inside a vitest test worker (where `afterAll` may be registered while collecting). */
function inVitestWorker(): boolean {
  return process.env.VITEST_WORKER_ID !== undefined || process.env.VITEST_POOL_ID !== undefined;
}

if (inVitestWorker()) {
  try {
    afterAll(runCleanups, 120_000);
  } catch {
    // Imported outside of collection (e.g. lazily from inside a test): the exit backstop remains.
  }
}
