import { HttpError, type Route } from '@sched/core';
import {
  enqueueCommand,
  getRun,
  getWorkflowVersion,
  listAttemptsOfRun,
  listRuns,
  type RunState,
  requestRunCancel,
} from '@sched/store';
import { notifyOwners } from '../runs/run-wake-channel.js';
import { type ApiDeps, badRequest, idParam } from './api-node.js';
import { runDetailJson, runSummaryJson } from './run-json.js';
import { waitForCommandRuns } from './wait-for-command.js';

/**
 * Runs: list (filters workflow, state, since, limit; newest first), show (tasks and attempts),
 * cancel (pending runs end at once; running ones are flagged and their owner woken to kill the
 * attempts), re-run (a durable `rerun` command).
 */

const RUN_STATES: readonly RunState[] = ['pending', 'running', 'succeeded', 'failed', 'cancelled'];
export const DEFAULT_RUN_LIMIT = 100;
export const MAX_RUN_LIMIT = 10_000;

function listFilters(q: URLSearchParams): Parameters<typeof listRuns>[1] {
  const f: Parameters<typeof listRuns>[1] = { limit: DEFAULT_RUN_LIMIT };
  const workflow = q.get('workflow');
  if (workflow !== null) f.workflow = workflow;
  const state = q.get('state');
  if (state !== null) {
    if (!RUN_STATES.includes(state as RunState)) {
      throw badRequest('state', `expected one of ${RUN_STATES.join(', ')}, got ${JSON.stringify(state)}`);
    }
    f.state = state as RunState;
  }
  const since = q.get('since');
  if (since !== null) {
    const ms = Date.parse(since);
    if (!/^\d{4}-\d{2}-\d{2}/.test(since) || !Number.isFinite(ms)) {
      throw badRequest(
        'since',
        `expected an ISO 8601 time like 2026-01-31T09:00:00Z, got ${JSON.stringify(since)}`,
      );
    }
    f.sinceMs = ms;
  }
  const limit = q.get('limit');
  if (limit !== null) {
    const n = Number(limit);
    if (!/^\d+$/.test(limit) || n < 1 || n > MAX_RUN_LIMIT) {
      throw badRequest(
        'limit',
        `expected an integer from 1 to ${MAX_RUN_LIMIT}, got ${JSON.stringify(limit)}`,
      );
    }
    f.limit = n;
  }
  return f;
}

function noRun(id: number): HttpError {
  return new HttpError(404, 'NOT_FOUND', `no run with id ${id}`);
}

export function runRoutes(deps: ApiDeps): Route[] {
  const pool = () => deps.node.pool;
  return [
    {
      method: 'GET',
      pattern: /^\/v1\/runs$/,
      handle: async (ctx) => ({
        status: 200,
        body: (await listRuns(pool(), listFilters(ctx.query))).map(runSummaryJson),
      }),
    },
    {
      method: 'GET',
      pattern: /^\/v1\/runs\/([^/]+)$/,
      handle: async (ctx) => {
        const id = idParam(ctx.params[0], 'run id');
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
    },
    {
      method: 'POST',
      pattern: /^\/v1\/runs\/([^/]+)\/cancel$/,
      handle: async (ctx) => {
        const id = idParam(ctx.params[0], 'run id');
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
    },
    {
      method: 'POST',
      pattern: /^\/v1\/runs\/([^/]+)\/rerun$/,
      handle: async (ctx) => {
        const id = idParam(ctx.params[0], 'run id');
        const run = await getRun(pool(), id);
        if (!run) throw noRun(id);
        if (run.state === 'pending' || run.state === 'running') {
          throw new HttpError(
            409,
            'RUN_ACTIVE',
            `run ${id} is still ${run.state}; re-run it once it has ended`,
          );
        }
        const body = (await ctx.json({ optional: true })) as { fromFailed?: unknown } | undefined;
        if (body !== undefined && (typeof body !== 'object' || body === null || Array.isArray(body))) {
          throw new HttpError(400, 'REQUEST_INVALID', 'body: expected { "fromFailed"?: boolean } or nothing');
        }
        const fromFailed = body?.fromFailed ?? false;
        if (typeof fromFailed !== 'boolean') {
          throw new HttpError(
            400,
            'REQUEST_INVALID',
            `fromFailed: expected true or false, got ${JSON.stringify(fromFailed)}`,
          );
        }
        const commandId = await enqueueCommand(pool(), {
          kind: 'rerun',
          runId: id,
          fromFailed,
          requestedBy: `api@${deps.node.key}`,
        });
        const runIds = await waitForCommandRuns(pool(), commandId, deps.commandWaitMs ?? 5_000);
        return { status: 202, body: { commandId, rerunOf: id, runId: runIds[0] ?? null } };
      },
    },
  ];
}
