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
    // Never awaited: a task's completion does not wait for its report. A spool that cannot be
    // written does not lose it either (the sender holds it in memory and sends it anyway); only a
    // stopped sender refuses it, and the masters then find the attempt by asking this worker or
    // by failing it over.
    sender.submit(report).catch((err) => {
      logger?.error(
        { err, attemptId: report.attemptId, kind: report.kind },
        'attempt report not accepted for sending (the report sender is stopped)',
      );
    });
  });
}
