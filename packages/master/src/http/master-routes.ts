import { HttpError, type Route } from '@sched/core';
import {
  type AttemptReport,
  attemptReportProblem,
  MAX_REPORTS_PER_BATCH,
  PROTOCOL_HEADER,
  protocolMismatch,
  WireError,
} from '@sched/protocol';
import type { ReportApplier } from '../reports/report-applier.js';

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
        // A worker of another protocol version is refused before its reports are read.
        const mismatch = protocolMismatch(ctx.req.headers[PROTOCOL_HEADER], 'worker');
        if (mismatch !== null) throw new HttpError(400, WireError.ProtocolMismatch, mismatch);
        const body = (await ctx.json()) as { reports?: unknown } | null;
        const reports = body?.reports;
        if (typeof body !== 'object' || body === null || !Array.isArray(reports)) {
          throw new HttpError(
            400,
            WireError.RequestInvalid,
            'reports: expected { "reports": [ …attempt reports ] }',
          );
        }
        if (reports.length > MAX_REPORTS_PER_BATCH) {
          throw new HttpError(
            400,
            WireError.RequestInvalid,
            `reports: at most ${MAX_REPORTS_PER_BATCH} per request, got ${reports.length}`,
          );
        }
        const valid: AttemptReport[] = [];
        const rejected: { reportId: string; code: string; message: string }[] = [];
        reports.forEach((r, i) => {
          const problem = attemptReportProblem(r);
          if (problem === null) valid.push(r as AttemptReport);
          else if (typeof (r as { reportId?: unknown })?.reportId === 'string') {
            rejected.push({
              reportId: (r as { reportId: string }).reportId,
              code: WireError.ReportInvalid,
              message: problem,
            });
          } else throw new HttpError(400, WireError.RequestInvalid, `reports[${i}]: ${problem}`);
        });
        if (valid.length === 0 && rejected.length > 0) {
          // Nothing in the batch can ever apply: a 4xx, still listing the rejected reports so the
          // worker drops them from its spool instead of retrying them forever.
          return {
            status: 422,
            body: {
              error: {
                code: WireError.ReportsInvalid,
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
            WireError.StoreUnavailable,
            `reports not applied, retry later: ${(err as Error).message}`,
          );
        }
        for (const i of outcome.invalid)
          rejected.push({ reportId: i.reportId, code: WireError.ReportInvalid, message: i.message });
        return { status: 200, body: { acked: [...outcome.applied, ...outcome.stale], rejected } };
      },
    },
  ];
}
