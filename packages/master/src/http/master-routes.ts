import { HttpError, type Route } from '@sched/core';
import type { AttemptReport } from '@sched/worker';
import type { ReportApplier } from '../reports/report-applier.js';

/** Most reports in one batch (a worker's spool sends at most this many at once). */
const MAX_REPORTS = 2_000;

/**
 * `POST /v1/reports` (docs/transport.md): a worker's attempt reports. Answers
 * `{ acked: [reportId…], rejected: [{ reportId, code, message }…] }`; both lists are final for
 * the worker (drop them from the spool). When every report of a batch is rejected the answer is
 * 422 with the same lists. A database failure answers 503 and nothing is acked.
 */
export function reportRoutes(applier: Pick<ReportApplier, 'apply'>): Route[] {
  return [
    {
      method: 'POST',
      pattern: /^\/v1\/reports$/,
      async handle(ctx) {
        const body = (await ctx.json()) as { reports?: unknown } | null;
        const reports = body?.reports;
        if (typeof body !== 'object' || body === null || !Array.isArray(reports)) {
          throw new HttpError(
            400,
            'REQUEST_INVALID',
            'reports: expected { "reports": [ …attempt reports ] }',
          );
        }
        if (reports.length > MAX_REPORTS) {
          throw new HttpError(
            400,
            'REQUEST_INVALID',
            `reports: at most ${MAX_REPORTS} per request, got ${reports.length}`,
          );
        }
        const valid: AttemptReport[] = [];
        const rejected: { reportId: string; code: string; message: string }[] = [];
        reports.forEach((r, i) => {
          const problem = reportProblem(r);
          if (problem === null) valid.push(r as AttemptReport);
          else if (typeof (r as { reportId?: unknown })?.reportId === 'string') {
            rejected.push({
              reportId: (r as { reportId: string }).reportId,
              code: 'REPORT_INVALID',
              message: problem,
            });
          } else throw new HttpError(400, 'REQUEST_INVALID', `reports[${i}]: ${problem}`);
        });
        if (valid.length === 0 && rejected.length > 0) {
          // Nothing in the batch can ever apply: a 4xx, still listing the rejected reports so the
          // worker drops them from its spool instead of retrying them forever.
          return {
            status: 422,
            body: {
              error: {
                code: 'REPORTS_INVALID',
                message: `every report was rejected: ${rejected[0]?.message}`,
              },
              acked: [],
              rejected,
            },
          };
        }
        let outcome: Awaited<ReturnType<ReportApplier['apply']>>;
        try {
          outcome = await applier.apply(valid);
        } catch (err) {
          throw new HttpError(
            503,
            'STORE_UNAVAILABLE',
            `reports not applied, retry later: ${(err as Error).message}`,
          );
        }
        for (const i of outcome.invalid)
          rejected.push({ reportId: i.reportId, code: 'REPORT_INVALID', message: i.message });
        return { status: 200, body: { acked: [...outcome.applied, ...outcome.stale], rejected } };
      },
    },
  ];
}

function reportProblem(r: unknown): string | null {
  if (typeof r !== 'object' || r === null || Array.isArray(r)) return 'expected an object';
  const x = r as Record<string, unknown>;
  if (typeof x.reportId !== 'string' || x.reportId.length === 0 || x.reportId.length > 200)
    return 'reportId: expected a non-empty string';
  if (x.kind !== 'running' && x.kind !== 'finished') return 'kind: expected "running" or "finished"';
  if (typeof x.attemptId !== 'string' || !/^[1-9][0-9]{0,15}$/.test(x.attemptId))
    return 'attemptId: expected the decimal id of an attempt';
  if (typeof x.worker !== 'string' || x.worker.length === 0) return 'worker: expected an incarnation key';
  if (x.kind === 'finished') {
    const res = x.result as Record<string, unknown> | null;
    if (typeof res !== 'object' || res === null) return 'result: expected the attempt result';
    if (!['succeeded', 'failed', 'timed-out', 'killed', 'failed-over'].includes(res.state as string))
      return 'result.state: expected succeeded, failed, timed-out, killed or failed-over';
    if (
      res.endedAt !== undefined &&
      (typeof res.endedAt !== 'string' || Number.isNaN(Date.parse(res.endedAt)))
    )
      return 'result.endedAt: expected an ISO 8601 time';
  }
  if (x.startedAt !== undefined && (typeof x.startedAt !== 'string' || Number.isNaN(Date.parse(x.startedAt))))
    return 'startedAt: expected an ISO 8601 time';
  return null;
}
