import type { AttemptRequest, TaskSpec } from '@sched/protocol';
import type { TaskDefinition } from '@sched/store';

/** The worker-side task spec for a definition's task (docs/definitions.md → docs/transport.md). */
export function taskSpecOf(task: TaskDefinition): TaskSpec {
  switch (task.type) {
    case 'shell':
      return { type: 'shell', command: task.command ?? '' };
    case 'script':
      return {
        type: 'script',
        interpreter: task.script?.interpreter ?? '',
        interpreterArgs: [],
        source: task.script?.source ?? '',
        args: [],
      };
    case 'http': {
      const h = task.http;
      return {
        type: 'http',
        url: h?.url ?? '',
        method: h?.method ?? 'GET',
        headers: h?.headers ?? {},
        body: h?.body ?? null,
        expectedStatus: h?.expectStatus ?? [],
        requestTimeoutMs: null,
      };
    }
    case 'noop':
      return { type: 'noop' };
  }
}

export interface AttemptIdentity {
  attemptId: number;
  runId: number;
  taskName: string;
  attempt: number;
  shardIndex: number;
  shardTotal: number;
  fireTime: Date | null;
  workerKey: string;
  /**
   * czxid of the worker's registration the attempt is recorded for (`task_attempts.worker_czxid`);
   * the worker refuses the dispatch if it is on another registration now. null = not checked.
   */
  workerCzxid: bigint | null;
  /** The row's `dispatch_seq`: which assignment of the attempt this dispatch is. */
  dispatchSeq: number;
}

/**
 * The dispatch body for one attempt. The idempotency key is the same for every attempt of one
 * task (and shard) of one run, so a task whose side effects are keyed on it does them once even
 * when it is retried or failed over (docs/design.md#guarantees).
 */
export function attemptRequestOf(
  a: AttemptIdentity,
  task: TaskDefinition,
  params: Record<string, string>,
): AttemptRequest {
  return {
    attemptId: String(a.attemptId),
    runId: String(a.runId),
    taskName: a.taskName,
    attempt: a.attempt,
    fireTime: a.fireTime ? a.fireTime.toISOString() : null,
    shardIndex: a.shardIndex,
    shardTotal: a.shardTotal,
    idempotencyKey: `run-${a.runId}/${a.taskName}/${a.shardIndex}`,
    params,
    timeoutMs: task.timeoutMs,
    worker: a.workerKey,
    registration: a.workerCzxid?.toString() ?? null,
    dispatchSeq: a.dispatchSeq,
    task: taskSpecOf(task),
  };
}
