import { HttpError } from '@sched/core';
import {
  enqueueCommand,
  getRun,
  getWorkflowVersion,
  listAttemptsOfRun,
  listRuns,
  requestRunCancel,
} from '@sched/store';
import { z } from 'zod';
import { type ApiRoute, defineRoute, jsonResponse } from '../http/api-route.js';
import { errorSchema } from '../http/openapi.js';
import { notifyOwners } from '../runs/run-wake-channel.js';
import type { ApiDeps } from './api-node.js';
import {
  cancelAnswerSchema,
  idParam,
  RUN_STATES,
  rerunAnswerSchema,
  runDetailSchema,
  runSummarySchema,
} from './api-schemas.js';
import { runDetailJson, runSummaryJson } from './run-json.js';
import { waitForCommandRuns } from './wait-for-command.js';

/**
 * Runs: list (filters workflow, state, since, limit; newest first), show (tasks and attempts),
 * cancel (pending runs end at once; running ones are flagged and their owner woken to kill the
 * attempts), re-run (a durable `rerun` command).
 */

export const DEFAULT_RUN_LIMIT = 100;
export const MAX_RUN_LIMIT = 10_000;

const listQuery = z.object({
  workflow: z.string().optional().describe('only runs of this workflow'),
  state: z
    .enum(RUN_STATES, {
      error: (iss) => `expected one of ${RUN_STATES.join(', ')}, got ${JSON.stringify(iss.input)}`,
    })
    .optional(),
  since: z
    .string()
    .optional()
    .refine((t) => t === undefined || (/^\d{4}-\d{2}-\d{2}/.test(t) && Number.isFinite(Date.parse(t))), {
      error: (iss) => `expected an ISO 8601 time like 2026-01-31T09:00:00Z, got ${JSON.stringify(iss.input)}`,
    })
    .describe('only runs created at or after this instant (ISO 8601)'),
  limit: z
    .string()
    .optional()
    .refine((t) => t === undefined || (/^\d+$/.test(t) && Number(t) >= 1 && Number(t) <= MAX_RUN_LIMIT), {
      error: (iss) => `expected an integer from 1 to ${MAX_RUN_LIMIT}, got ${JSON.stringify(iss.input)}`,
    })
    .describe(`how many runs, newest first (default ${DEFAULT_RUN_LIMIT}, at most ${MAX_RUN_LIMIT})`),
});

const runParams = z.object({ id: idParam('run id') });
const rerunBody = z
  .object(
    {
      fromFailed: z
        .boolean({ error: (iss) => `expected true or false, got ${JSON.stringify(iss.input)}` })
        .optional()
        .describe('re-run only the tasks that did not succeed (and what depends on them)'),
    },
    {
      error: (iss) =>
        iss.code === 'invalid_type' ? 'expected { "fromFailed"?: boolean } or nothing' : undefined,
    },
  )
  .optional();

function noRun(id: number): HttpError {
  return new HttpError(404, 'NOT_FOUND', `no run with id ${id}`);
}

export function runRoutes(deps: ApiDeps): ApiRoute[] {
  const pool = () => deps.node.pool;
  const notFound = jsonResponse(errorSchema, 'NOT_FOUND: no run with that id');
  return [
    defineRoute({
      method: 'GET',
      url: '/v1/runs',
      summary: 'Runs, newest first, filtered',
      tags: ['runs'],
      query: listQuery,
      responses: { 200: jsonResponse(z.array(runSummarySchema), 'the runs') },
      handler: async ({ query }) => {
        const f: Parameters<typeof listRuns>[1] = {
          limit: query.limit === undefined ? DEFAULT_RUN_LIMIT : Number(query.limit),
        };
        if (query.workflow !== undefined) f.workflow = query.workflow;
        if (query.state !== undefined) f.state = query.state;
        if (query.since !== undefined) f.sinceMs = Date.parse(query.since);
        return { status: 200, body: (await listRuns(pool(), f)).map(runSummaryJson) };
      },
    }),
    defineRoute({
      method: 'GET',
      url: '/v1/runs/:id',
      summary: 'One run: every task of its definition version with its attempts',
      tags: ['runs'],
      params: runParams,
      responses: { 200: jsonResponse(runDetailSchema, 'the run'), 404: notFound },
      handler: async ({ params }) => {
        const { id } = params;
        const run = await getRun(pool(), id);
        if (!run) throw noRun(id);
        const [definition, attempts] = await Promise.all([
          getWorkflowVersion(pool(), run.workflowId, run.workflowVersion),
          listAttemptsOfRun(pool(), id),
        ]);
        const tasks = (definition as { tasks?: { name: string }[] } | null)?.tasks ?? [];
        return {
          status: 200,
          body: runDetailJson(
            run,
            tasks.map((t) => t.name),
            attempts,
          ),
        };
      },
    }),
    defineRoute({
      method: 'POST',
      url: '/v1/runs/:id/cancel',
      summary: 'Cancel a run',
      description:
        'A pending run ends at once; a running one is flagged and its owner woken to kill its attempts.',
      tags: ['runs'],
      params: runParams,
      responses: {
        200: jsonResponse(cancelAnswerSchema, 'cancel requested (or done)'),
        404: notFound,
        409: jsonResponse(errorSchema, 'RUN_FINISHED: the run already ended'),
      },
      handler: async ({ params }) => {
        const { id } = params;
        const state = await requestRunCancel(pool(), id);
        const run = await getRun(pool(), id);
        if (!run) throw noRun(id);
        if (state === null) {
          throw new HttpError(
            409,
            'RUN_FINISHED',
            `run ${id} already ended (${run.state}); nothing to cancel`,
          );
        }
        // The owner drives the run: it sees cancel_requested_at and kills the running attempts.
        if (run.owner !== null && state !== 'cancelled') {
          if (run.owner === deps.node.key) deps.node.driver?.wake([id]);
          else await notifyOwners(pool(), new Map([[run.owner, [id]]]));
        }
        deps.logger.info({ runId: id, state }, 'run cancel requested');
        return {
          status: 200,
          body: { id, state: run.state, cancelRequestedAt: run.cancelRequestedAt?.toISOString() ?? null },
        };
      },
    }),
    defineRoute({
      method: 'POST',
      url: '/v1/runs/:id/rerun',
      summary: 'Re-run an ended run (a durable command; waits briefly for the new run id)',
      tags: ['runs'],
      params: runParams,
      body: rerunBody,
      responses: {
        202: jsonResponse(rerunAnswerSchema, 'the command, and the new run once claimed'),
        404: notFound,
        409: jsonResponse(errorSchema, 'RUN_ACTIVE: the run has not ended'),
      },
      handler: async ({ params, body }) => {
        const { id } = params;
        const run = await getRun(pool(), id);
        if (!run) throw noRun(id);
        if (run.state === 'pending' || run.state === 'running') {
          throw new HttpError(
            409,
            'RUN_ACTIVE',
            `run ${id} is still ${run.state}; re-run it once it has ended`,
          );
        }
        const commandId = await enqueueCommand(pool(), {
          kind: 'rerun',
          runId: id,
          fromFailed: body?.fromFailed ?? false,
          requestedBy: `api@${deps.node.key}`,
        }).catch((err: unknown) => {
          // The run was deleted meanwhile (retention: docs/operations.md#retention).
          if ((err as { code?: string }).code === '23503') throw noRun(id);
          throw err;
        });
        const runIds = await waitForCommandRuns(pool(), commandId, deps.commandWaitMs ?? 5_000);
        return { status: 202, body: { commandId, rerunOf: id, runId: runIds[0] ?? null } };
      },
    }),
  ];
}
