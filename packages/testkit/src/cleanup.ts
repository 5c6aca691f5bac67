// Everything the harness starts must be gone when the test file ends, even when a test
// fails or the worker process is torn down. Two layers:
//   1. inside a vitest worker, one `afterAll` hook (registered when this module is first
//      evaluated, i.e. while the test file is being collected) runs the async cleanups in
//      reverse order of registration: graceful stops, then removal of temp data;
//   2. a synchronous backstop on process `exit` (and SIGTERM/SIGINT/SIGHUP) that SIGKILLs
//      every child still alive, for the cases where the hook never ran.
// Vitest runs each test file in a fresh fork (isolate), so "end of the worker process" and
// "end of the test file" are the same moment.

import { afterAll } from 'vitest';

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
}

export function untrackChild(pid: number): void {
  liveChildren.delete(pid);
}

/** SIGKILLs every tracked child right now (synchronous: safe inside an `exit` handler). */
export function killAllChildrenNow(): void {
  for (const [pid, { group }] of liveChildren) {
    try {
      process.kill(group ? -pid : pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }
  liveChildren.clear();
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
