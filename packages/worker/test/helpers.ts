import { readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { AttemptRequest, TaskSpec } from '@sched/protocol';

/**
 * Whether `pid` runs, read straight from /proc, independent of the code under test. A zombie
 * (exited, not yet reaped — this machine's init does not reap orphans) is not running.
 */
export function pidRuns(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const state = stat.slice(stat.lastIndexOf(')') + 2).split(' ')[0];
    return state !== 'Z' && state !== 'X';
  } catch {
    return false;
  }
}

let counter = 0;
export function attemptRequest(task: TaskSpec, extra: Partial<AttemptRequest> = {}): AttemptRequest {
  counter++;
  return {
    attemptId: `att-${process.pid}-${counter}`,
    runId: `run-${counter}`,
    taskName: 'extract',
    attempt: 1,
    fireTime: '2026-01-02T03:04:05.000Z',
    shardIndex: 0,
    shardTotal: 1,
    idempotencyKey: `run-${counter}/extract`,
    params: {},
    timeoutMs: null,
    worker: null,
    registration: null,
    dispatchSeq: 0,
    task,
    ...extra,
  };
}

export async function tempDir(prefix: string): Promise<{ path: string; remove(): Promise<void> }> {
  const path = await mkdtemp(join(tmpdir(), `sched-${prefix}-`));
  return { path, remove: () => rm(path, { recursive: true, force: true }) };
}
