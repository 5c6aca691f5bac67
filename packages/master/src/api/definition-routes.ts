import { DefinitionError, HttpError, type RequestContext, type Route } from '@sched/core';
import {
  applyDefinitions,
  compileDefinitionSources,
  compileDefinitions,
  type DefinitionSource,
  deleteWorkflowByName,
  enqueueCommand,
  getScheduleOfWorkflow,
  getWorkflowByName,
  setWorkflowPaused,
  type WorkflowDefinition,
} from '@sched/store';
import { type ApiDeps, badRequest } from './api-node.js';
import { listWorkflowOverview } from './api-queries.js';
import { iso } from './run-json.js';
import { waitForCommandRuns } from './wait-for-command.js';

/**
 * Workflow definitions: apply (validated all-or-nothing: one 422 lists every problem of every
 * document and nothing is written), list, get, delete, pause, resume, trigger.
 */

const NAME = '([a-z0-9][a-z0-9-]*)';

/** Body of `POST /v1/workflows`: source texts (as files hold them) or already-parsed definitions. */
function definitionsFromBody(body: unknown): WorkflowDefinition[] {
  if (body === null || typeof body !== 'object' || Array.isArray(body)) {
    throw badRequest(
      '',
      'expected a JSON object { "sources": [{ "label", "text" }] } or { "definitions": [...] }',
    );
  }
  const b = body as { sources?: unknown; definitions?: unknown };
  try {
    if (b.sources !== undefined) {
      if (!Array.isArray(b.sources) || b.sources.length === 0) {
        throw badRequest('sources', 'expected a non-empty array of { "label", "text" }');
      }
      const sources: DefinitionSource[] = b.sources.map((s, i) => {
        const src = s as { label?: unknown; text?: unknown };
        if (typeof src?.text !== 'string') throw badRequest(`sources[${i}].text`, 'expected a string');
        return { label: typeof src.label === 'string' ? src.label : `source ${i + 1}`, text: src.text };
      });
      return compileDefinitionSources(sources);
    }
    if (b.definitions !== undefined) {
      if (!Array.isArray(b.definitions)) throw badRequest('definitions', 'expected an array of definitions');
      return compileDefinitions(b.definitions.map((value) => ({ value })));
    }
  } catch (err) {
    if (err instanceof DefinitionError) {
      throw new HttpError(422, 'DEFINITION_INVALID', err.message, { issues: err.issues });
    }
    throw err;
  }
  throw badRequest('', 'expected "sources" or "definitions"');
}

async function triggerParams(ctx: RequestContext): Promise<Record<string, string>> {
  const body = await ctx.json({ optional: true });
  if (body === undefined) return {};
  if (body === null || typeof body !== 'object' || Array.isArray(body)) {
    throw badRequest('', 'expected a JSON object { "params": { "NAME": "value" } }');
  }
  const params = (body as { params?: unknown }).params;
  if (params === undefined) return {};
  if (params === null || typeof params !== 'object' || Array.isArray(params)) {
    throw badRequest('params', 'expected an object of string values');
  }
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(params)) {
    if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(k)) {
      throw badRequest(
        `params.${k}`,
        'parameter names are letters, digits and _ (not starting with a digit)',
      );
    }
    if (typeof v !== 'string') throw badRequest(`params.${k}`, `expected a string, got ${typeof v}`);
    out[k] = v;
  }
  return out;
}

/** When the schedule fires next; null without a schedule or while paused (a paused schedule does not fire). */
function nextFire(s: { paused: boolean; nextFireTime: number | null } | null): string | null {
  return s === null || s.paused || s.nextFireTime === null ? null : new Date(s.nextFireTime).toISOString();
}

function notFound(name: string): HttpError {
  return new HttpError(404, 'NOT_FOUND', `no workflow named ${JSON.stringify(name)}`);
}

export function definitionRoutes(deps: ApiDeps): Route[] {
  const pool = () => deps.node.pool;
  const nowMs = () => (deps.clock ?? { now: Date.now }).now();
  const setPaused = async (name: string, paused: boolean) => {
    const wf = await getWorkflowByName(pool(), name);
    if (!wf) throw notFound(name);
    if (!(await setWorkflowPaused(pool(), name, paused, nowMs()))) {
      throw new HttpError(
        409,
        'NO_SCHEDULE',
        `workflow ${name} has no schedule to ${paused ? 'pause' : 'resume'}`,
      );
    }
    const s = await getScheduleOfWorkflow(pool(), wf.id);
    return {
      status: 200,
      body: {
        name,
        paused,
        nextFireTime: nextFire(s),
      },
    };
  };
  return [
    {
      method: 'POST',
      pattern: /^\/v1\/workflows$/,
      handle: async (ctx) => {
        const defs = definitionsFromBody(await ctx.json());
        const applied = await applyDefinitions(pool(), defs, { nowMs: nowMs() });
        deps.logger.info({ applied }, 'workflow definitions applied');
        return { status: 200, body: { applied } };
      },
    },
    {
      method: 'GET',
      pattern: /^\/v1\/workflows$/,
      handle: async () => ({
        status: 200,
        body: (await listWorkflowOverview(pool())).map((w) => ({
          name: w.name,
          version: w.version,
          tasks: w.tasks,
          schedule: w.cron === null ? null : { cron: w.cron, timezone: w.timezone, paused: w.paused },
          nextFireTime: w.paused ? null : iso(w.nextFireTime),
          activeRuns: w.activeRuns,
          updatedAt: w.updatedAt.toISOString(),
        })),
      }),
    },
    {
      method: 'GET',
      pattern: new RegExp(`^/v1/workflows/${NAME}$`),
      handle: async (ctx) => {
        const name = ctx.params[0] as string;
        const wf = await getWorkflowByName(pool(), name);
        if (!wf) throw notFound(name);
        const s = await getScheduleOfWorkflow(pool(), wf.id);
        return {
          status: 200,
          body: {
            name: wf.name,
            version: wf.currentVersion,
            definition: wf.definition,
            paused: s?.paused ?? null,
            nextFireTime: nextFire(s),
            createdAt: wf.createdAt.toISOString(),
            updatedAt: wf.updatedAt.toISOString(),
          },
        };
      },
    },
    {
      method: 'DELETE',
      pattern: new RegExp(`^/v1/workflows/${NAME}$`),
      handle: async (ctx) => {
        const name = ctx.params[0] as string;
        const force = ctx.query.get('force') === 'true';
        const overview = (await listWorkflowOverview(pool())).find((w) => w.name === name);
        if (!overview) throw notFound(name);
        if (overview.activeRuns > 0 && !force) {
          throw new HttpError(
            409,
            'WORKFLOW_ACTIVE',
            `workflow ${name} has ${overview.activeRuns} active run(s); cancel them first, or delete with force`,
          );
        }
        if (!(await deleteWorkflowByName(pool(), name))) throw notFound(name);
        deps.logger.info({ workflow: name }, 'workflow deleted');
        return { status: 200, body: { deleted: name } };
      },
    },
    {
      method: 'POST',
      pattern: new RegExp(`^/v1/workflows/${NAME}/pause$`),
      handle: (ctx) => setPaused(ctx.params[0] as string, true),
    },
    {
      method: 'POST',
      pattern: new RegExp(`^/v1/workflows/${NAME}/resume$`),
      handle: (ctx) => setPaused(ctx.params[0] as string, false),
    },
    {
      method: 'POST',
      pattern: new RegExp(`^/v1/workflows/${NAME}/trigger$`),
      handle: async (ctx) => {
        const name = ctx.params[0] as string;
        const params = await triggerParams(ctx);
        const wf = await getWorkflowByName(pool(), name);
        if (!wf) throw notFound(name);
        const commandId = await enqueueCommand(pool(), {
          kind: 'trigger',
          workflowId: wf.id,
          params,
          requestedBy: `api@${deps.node.key}`,
        });
        const runIds = await waitForCommandRuns(pool(), commandId, deps.commandWaitMs ?? 5_000);
        return { status: 202, body: { commandId, runId: runIds[0] ?? null } };
      },
    },
  ];
}
