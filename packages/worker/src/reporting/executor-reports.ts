import { randomUUID } from 'node:crypto';
import type { Clock, Logger } from '@sched/core';
import { finishedReport, runningReport } from '@sched/protocol';
import type { TaskExecutor } from '../executor/task-executor.js';
import type { ReportSender } from './report-sender.js';

/**
 * Turns executor events into reports: RUNNING when the task starts, then the result. Returns the
 * unsubscribe function. `nodeKey` is this worker's incarnation key.
 */
export function reportExecutorEvents(
  executor: TaskExecutor,
  sender: ReportSender,
  nodeKey: () => string,
  clock: Clock,
  logger?: Logger,
): () => void {
  return executor.on((event) => {
    const at = new Date(clock.now()).toISOString();
    const report =
      event.type === 'running'
        ? runningReport(randomUUID(), event.request, nodeKey(), event.snapshot.startedAt ?? at, at)
        : finishedReport(randomUUID(), event.request, nodeKey(), event.result, at);
    sender.submit(report).catch((err) => {
      // The spool could not be written (disk full, read-only): the master will find the attempt
      // through failover or its own timeout; say so loudly.
      logger?.error(
        { err, attemptId: report.attemptId, kind: report.kind },
        'attempt report could not be spooled',
      );
    });
  });
}
