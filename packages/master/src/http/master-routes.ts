import { HttpError } from '@sched/core';
import {
  type AttemptReport,
  attemptReportProblem,
  attemptReportSchema,
  MAX_REPORTS_PER_BATCH,
  PROTOCOL_HEADER,
  protocolMismatch,
  WireError,
} from '@sched/protocol';
import { z } from 'zod';
import type { ReportApplier } from '../reports/report-applier.js';
import { type ApiRoute, defineRoute, jsonResponse } from './api-route.js';
import { errorSchema } from './openapi.js';

/**
 * `POST /v1/reports` (docs/transport.md): a worker's attempt reports. Answers
 * `{ acked: [reportId…], rejected: [{ reportId, code, message }…] }`; both lists are final for
 * the worker (drop them from the spool). When every report of a batch is rejected the answer is
 * 422 with the same lists. A database failure answers 503 and nothing is acked.
 */
const reportsBody = z.object(
  {
    reports: z
      .array(z.unknown(), { error: 'expected { "reports": [ …attempt reports ] }' })
      .max(MAX_REPORTS_PER_BATCH, {
        error: (iss) =>
          `at most ${MAX_REPORTS_PER_BATCH} per request, got ${(iss.input as unknown[] | undefined)?.length ?? 'more'}`,
      }),
  },
  {
    error: (iss) =>
      iss.code === 'invalid_type' ? 'expected { "reports": [ …attempt reports ] }' : undefined,
  },
);

const rejectedSchema = z.array(
  z
    .object({ reportId: z.string(), code: z.string(), message: z.string() })
    .describe('final: drop it from the spool'),
);

/** Largest report batch, bytes: a worker caps its batches well below (docs/transport.md). */
export const REPORTS_BODY_LIMIT = 16 * 1024 * 1024;

export function reportRoutes(applier: Pick<ReportApplier, 'apply'>): ApiRoute[] {
  return [
    defineRoute({
      method: 'POST',
      url: '/v1/reports',
      summary: 'A worker\u2019s attempt reports (running, finished)',
      description:
        'Each report is acked or rejected; both lists are final for the worker. A database failure answers 503 and nothing is acked.',
      tags: ['transport'],
      accessLog: 'debug',
      bodyLimit: REPORTS_BODY_LIMIT,
      body: reportsBody,
      documentedBody: z.object({ reports: z.array(attemptReportSchema).max(MAX_REPORTS_PER_BATCH) }),
      responses: {
        200: jsonResponse(
          z.object({ acked: z.array(z.string()), rejected: rejectedSchema }),
          'what was applied (or already was) and what never can be',
        ),
        422: jsonResponse(
          errorSchema.extend({ acked: z.array(z.string()), rejected: rejectedSchema }),
          'REPORTS_INVALID: every report of the batch was rejected',
        ),
        503: jsonResponse(errorSchema, 'STORE_UNAVAILABLE: not applied, retry later'),
      },
      checkHead(request) {
        // A worker of another protocol version is refused before its reports are read.
        const mismatch = protocolMismatch(request.headers[PROTOCOL_HEADER], 'worker');
        if (mismatch !== null) throw new HttpError(400, WireError.ProtocolMismatch, mismatch);
      },
      async handler({ body }) {
        const { reports } = body;
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
    }),
  ];
}
