import { z } from 'zod';
import type { AttemptRequest } from './attempt-request.js';
import { type AttemptResult, FINAL_ATTEMPT_STATES } from './attempt-result.js';

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

const isoTime = z.string().refine((s) => !Number.isNaN(Date.parse(s)), 'expected an ISO 8601 time');

/** The result part of a `finished` report, as a master accepts it (unknown fields are kept). */
export const attemptResultSchema = z.looseObject({
  state: z.enum(FINAL_ATTEMPT_STATES, {
    error: `expected ${FINAL_ATTEMPT_STATES.slice(0, -1).join(', ')} or ${FINAL_ATTEMPT_STATES.at(-1)}`,
  }),
  exitCode: z.number().int().nullable().optional(),
  endedAt: isoTime.optional(),
  logTail: z.string().optional(),
  error: z.string().nullable().optional(),
});

/** One attempt report as a master accepts it (`POST /v1/reports`). */
export const attemptReportSchema = z
  .looseObject({
    reportId: z
      .string({ error: 'expected a non-empty string' })
      .min(1, 'expected a non-empty string')
      .max(200),
    kind: z.enum(['running', 'finished'], { error: 'expected "running" or "finished"' }),
    attemptId: z
      .string({ error: 'expected the decimal id of an attempt' })
      .regex(/^[1-9][0-9]{0,15}$/, 'expected the decimal id of an attempt'),
    worker: z.string({ error: 'expected an incarnation key' }).min(1, 'expected an incarnation key'),
    startedAt: isoTime.optional(),
    result: attemptResultSchema.nullable().optional(),
  })
  .refine((r) => r.kind !== 'finished' || (r.result !== null && r.result !== undefined), {
    path: ['result'],
    message: 'expected the attempt result',
  });

/** Most reports in one batch (a worker's spool sends at most 500 at once). */
export const MAX_REPORTS_PER_BATCH = 2_000;

/** The master's answer to `POST /v1/reports`, as the worker reads it. */
export const reportAckSchema = z.object({
  acked: z.array(z.string()),
  rejected: z.array(z.object({ reportId: z.string(), code: z.string(), message: z.string() })).optional(),
});

/** Why a report cannot be applied, as `path: message`; null when it can. */
export function attemptReportProblem(value: unknown): string | null {
  const parsed = attemptReportSchema.safeParse(value);
  if (parsed.success) return null;
  const issue = parsed.error.issues[0];
  if (!issue) return 'not an attempt report';
  const path = issue.path.join('.');
  if (issue.code === 'invalid_type' && path === '') return 'expected an object';
  return path ? `${path}: ${issue.message}` : issue.message;
}

/** The fields every report of `request`'s attempt carries. */
function reportOf(reportId: string, request: AttemptRequest, worker: string, at: string) {
  return {
    reportId,
    attemptId: request.attemptId,
    runId: request.runId,
    taskName: request.taskName,
    attempt: request.attempt,
    worker,
    at,
  };
}

export function runningReport(
  reportId: string,
  request: AttemptRequest,
  worker: string,
  startedAt: string,
  at: string,
): NewAttemptReport {
  return { ...reportOf(reportId, request, worker, at), kind: 'running', startedAt, result: null };
}

export function finishedReport(
  reportId: string,
  request: AttemptRequest,
  worker: string,
  result: AttemptResult,
  at: string,
): NewAttemptReport {
  return {
    ...reportOf(reportId, request, worker, at),
    kind: 'finished',
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
