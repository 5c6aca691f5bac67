import type { AttemptRequest } from '../executor/attempt-request.js';
import type { AttemptResult } from '../executor/attempt-result.js';

/**
 * What a worker tells a master about an attempt (docs/transport.md, "Reports"). Sent to any live
 * master, which applies it with a fenced conditional update
 * (`WHERE attempt_id = $1 AND worker = $worker AND state IN (…)`), so a report delivered twice —
 * after a lost ack, or replayed from the spool — changes nothing the second time.
 */
export interface AttemptReport {
  /** Unique id of this report; acks name it. */
  reportId: string;
  /** Position in this worker's spool: reports are sent in this order. */
  seq: number;
  kind: 'running' | 'finished';
  attemptId: string;
  runId: string;
  taskName: string;
  attempt: number;
  /** Incarnation key of the worker that ran the attempt (not necessarily the one replaying the report). */
  worker: string;
  /** ISO 8601: when the worker produced the report. */
  at: string;
  /** ISO 8601: when the attempt started on the worker. */
  startedAt: string;
  /** The outcome, for `finished` reports; null for `running`. */
  result: AttemptResult | null;
}

/** A report before the spool gave it its sequence number. */
export type NewAttemptReport = Omit<AttemptReport, 'seq'>;

/** The master's answer to a batch: acked reports are done; rejected ones will never apply (fenced, unknown). */
export interface ReportAck {
  acked: string[];
  rejected?: { reportId: string; code: string; message: string }[];
}

export function runningReport(
  reportId: string,
  request: AttemptRequest,
  worker: string,
  startedAt: string,
  at: string,
): NewAttemptReport {
  return {
    reportId,
    kind: 'running',
    attemptId: request.attemptId,
    runId: request.runId,
    taskName: request.taskName,
    attempt: request.attempt,
    worker,
    at,
    startedAt,
    result: null,
  };
}

export function finishedReport(
  reportId: string,
  request: AttemptRequest,
  worker: string,
  result: AttemptResult,
  at: string,
): NewAttemptReport {
  return {
    reportId,
    kind: 'finished',
    attemptId: request.attemptId,
    runId: request.runId,
    taskName: request.taskName,
    attempt: request.attempt,
    worker,
    at,
    startedAt: result.startedAt,
    result,
  };
}

/** Whether a parsed spool line is a report (a damaged line is skipped on replay). */
export function isAttemptReport(value: unknown): value is AttemptReport {
  const r = value as Partial<AttemptReport> | null;
  return (
    typeof r === 'object' &&
    r !== null &&
    typeof r.reportId === 'string' &&
    typeof r.seq === 'number' &&
    (r.kind === 'running' || r.kind === 'finished') &&
    typeof r.attemptId === 'string' &&
    typeof r.worker === 'string'
  );
}
