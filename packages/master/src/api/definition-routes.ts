import { DefinitionError, HttpError } from '@sched/core';
import {
  applyDefinitions,
  compileDefinitionSources,
  compileDefinitions,
  type DefinitionSource,
  definitionJsonSchema,
  deleteWorkflowByName,
  enqueueCommand,
  getScheduleOfWorkflow,
  getWorkflowByName,
  paramNameProblem,
  setWorkflowPaused,
  type WorkflowDefinition,
} from '@sched/store';
import { z } from 'zod';
import { type ApiRoute, defineRoute, jsonResponse } from '../http/api-route.js';
import { documentAs, errorSchema } from '../http/openapi.js';
import { issuesLine } from '../http/zod-issues.js';
import type { ApiDeps } from './api-node.js';
import { listWorkflowOverview } from './api-queries.js';
import {
  appliedSchema,
  deletedSchema,
  nameParams,
  pauseAnswerSchema,
  queryBoolean,
  triggerAnswerSchema,
  workflowListItemSchema,
  workflowSchema,
} from './api-schemas.js';
import { iso } from './run-json.js';
import { waitForCommandRuns } from './wait-for-command.js';

/**
 * Workflow definitions: apply (validated all-or-nothing: one 422 lists every problem of every
 * document and nothing is written), list, get, delete, pause, resume, trigger.
 */

const PARAM_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

const applyBody = z
  .object(
    {
      sources: z
        .array(
          z.object({
            label: z.string().optional().describe('where the text came from, for messages (a file name)'),
            text: z.string().describe('YAML or JSON, one or more documents'),
          }),
        )
        .min(1)
        .optional()
        .describe('definition files as they are written'),
      definitions: z
        .array(documentAs(z.unknown(), definitionJsonSchema()))
        .optional()
        .describe('already-parsed definitions (docs/definitions.md, docs/definition.schema.json)'),
    },
    {
      error: (iss) =>
        iss.code === 'invalid_type'
          ? 'expected a JSON object { "sources": [{ "label", "text" }] } or { "definitions": [...] }'
          : undefined,
    },
  )
  .refine((b) => b.sources !== undefined || b.definitions !== undefined, {
    error: 'expected "sources" or "definitions"',
  });

const triggerBody = z
  .object(
    {
      params: z
        .record(
          z.string().regex(PARAM_NAME, {
            error: 'parameter names are letters, digits and _ (not starting with a digit)',
          }),
          z.string(),
        )
        .optional()
        .describe(
          'run parameters: environment variables of the run\u2019s tasks. Only the parameters the workflow declares (the keys of its definition\u2019s `params`) are accepted, and no reserved name (PATH, LD_*, SCHED_*, …; docs/definitions.md#parameters)',
        ),
    },
    {
      error: (iss) =>
        iss.code === 'invalid_type' ? 'expected a JSON object { "params": { "NAME": "value" } }' : undefined,
    },
  )
  .optional();

/** Compiles the body of `POST /v1/workflows`: every problem of every document in one 422. */
function definitionsFromBody(body: z.output<typeof applyBody>): WorkflowDefinition[] {
  try {
    if (body.sources !== undefined) {
      const sources: DefinitionSource[] = body.sources.map((s, i) => ({
        label: s.label ?? `source ${i + 1}`,
        text: s.text,
      }));
      return compileDefinitionSources(sources);
    }
    return compileDefinitions((body.definitions ?? []).map((value) => ({ value })));
  } catch (err) {
    if (err instanceof DefinitionError) {
      throw new HttpError(422, 'DEFINITION_INVALID', err.message, { issues: err.issues });
    }
    throw err;
  }
}

/**
 * The parameters a trigger may set: the keys of the workflow-level `params` of its current
 * definition (docs/definitions.md#parameters).
 */
function declaredParams(definition: unknown): string[] {
  const params = (definition as { params?: unknown } | null)?.params;
  return params !== null && typeof params === 'object' ? Object.keys(params).sort() : [];
}

/**
 * Refuses (400 REQUEST_INVALID, one issue per name) a trigger parameter with a reserved name or one
 * the workflow does not declare: a trigger may only give declared parameters other values.
 */
function checkTriggerParams(workflow: string, params: Record<string, string>, declared: string[]): void {
  const issues = Object.keys(params).flatMap((name) => {
    const problem =
      paramNameProblem(name) ??
      (declared.includes(name)
        ? null
        : declared.length === 0
          ? `${name} is not a parameter of workflow ${workflow}: it declares none (a trigger may only set the parameters its definition declares under params; docs/definitions.md#parameters)`
          : `${name} is not a parameter of workflow ${workflow}; declared: ${declared.join(', ')}`);
    return problem === null ? [] : [{ path: `params.${name}`, message: problem }];
  });
  if (issues.length > 0) throw new HttpError(400, 'REQUEST_INVALID', issuesLine(issues), { issues });
}

/** When the schedule fires next; null without a schedule or while paused (a paused schedule does not fire). */
function nextFire(s: { paused: boolean; nextFireTime: number | null } | null): string | null {
  return s === null || s.paused || s.nextFireTime === null ? null : new Date(s.nextFireTime).toISOString();
}

function notFound(name: string): HttpError {
  return new HttpError(404, 'NOT_FOUND', `no workflow named ${JSON.stringify(name)}`);
}

export function definitionRoutes(deps: ApiDeps): ApiRoute[] {
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
  const noWorkflow = jsonResponse(errorSchema, 'NOT_FOUND: no workflow of that name');
  return [
    defineRoute({
      method: 'POST',
      url: '/v1/workflows',
      summary: 'Apply definitions, all or nothing',
      description:
        'Validated all-or-nothing: one 422 lists every problem of every document and nothing is written.',
      tags: ['workflows'],
      bodyLimit: 4 * 1024 * 1024,
      body: applyBody,
      responses: {
        200: jsonResponse(appliedSchema, 'what was created, updated or left unchanged'),
        422: jsonResponse(errorSchema, 'DEFINITION_INVALID: every problem, each in `error.issues`'),
      },
      handler: async ({ body }) => {
        const defs = definitionsFromBody(body);
        const applied = await applyDefinitions(pool(), defs, { nowMs: nowMs() });
        deps.logger.info({ applied }, 'workflow definitions applied');
        return { status: 200, body: { applied } };
      },
    }),
    defineRoute({
      method: 'GET',
      url: '/v1/workflows',
      summary: 'Every workflow with its schedule, next fire time and active runs',
      tags: ['workflows'],
      responses: { 200: jsonResponse(z.array(workflowListItemSchema), 'the workflows, by name') },
      handler: async () => ({
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
    }),
    defineRoute({
      method: 'GET',
      url: '/v1/workflows/:name',
      summary: 'One workflow: its current definition and schedule state',
      tags: ['workflows'],
      params: nameParams,
      responses: { 200: jsonResponse(workflowSchema, 'the workflow'), 404: noWorkflow },
      handler: async ({ params }) => {
        const wf = await getWorkflowByName(pool(), params.name);
        if (!wf) throw notFound(params.name);
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
    }),
    defineRoute({
      method: 'DELETE',
      url: '/v1/workflows/:name',
      summary: 'Delete a workflow with its schedule, versions and runs',
      tags: ['workflows'],
      params: nameParams,
      query: z.object({
        force: queryBoolean('delete even with active runs').optional(),
      }),
      responses: {
        200: jsonResponse(deletedSchema, 'deleted'),
        404: noWorkflow,
        409: jsonResponse(errorSchema, 'WORKFLOW_ACTIVE: it has active runs and force was not given'),
      },
      handler: async ({ params, query }) => {
        const { name } = params;
        const overview = (await listWorkflowOverview(pool())).find((w) => w.name === name);
        if (!overview) throw notFound(name);
        if (overview.activeRuns > 0 && !query.force) {
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
    }),
    ...(['pause', 'resume'] as const).map((action) =>
      defineRoute({
        method: 'POST',
        url: `/v1/workflows/:name/${action}`,
        summary: action === 'pause' ? 'Pause the schedule' : 'Resume the schedule',
        tags: ['workflows'],
        params: nameParams,
        responses: {
          200: jsonResponse(pauseAnswerSchema, 'the schedule\u2019s state'),
          404: noWorkflow,
          409: jsonResponse(errorSchema, 'NO_SCHEDULE: the workflow has no schedule'),
        },
        handler: ({ params }) => setPaused(params.name, action === 'pause'),
      }),
    ),
    defineRoute({
      method: 'POST',
      url: '/v1/workflows/:name/trigger',
      summary: 'Start a run now (a durable command; waits briefly for its run id)',
      tags: ['workflows'],
      params: nameParams,
      body: triggerBody,
      responses: {
        202: jsonResponse(triggerAnswerSchema, 'the command, and its run once claimed'),
        400: jsonResponse(
          errorSchema,
          'REQUEST_INVALID: a malformed body, a parameter the workflow does not declare or a reserved parameter name; every problem in `error.issues`',
        ),
        404: noWorkflow,
      },
      handler: async ({ params, body }) => {
        const wf = await getWorkflowByName(pool(), params.name);
        if (!wf) throw notFound(params.name);
        const runParams = body?.params ?? {};
        checkTriggerParams(wf.name, runParams, declaredParams(wf.definition));
        const commandId = await enqueueCommand(pool(), {
          kind: 'trigger',
          workflowId: wf.id,
          params: runParams,
          requestedBy: `api@${deps.node.key}`,
        });
        const runIds = await waitForCommandRuns(pool(), commandId, deps.commandWaitMs ?? 5_000);
        return { status: 202, body: { commandId, runId: runIds[0] ?? null } };
      },
    }),
  ];
}
