/**
 * An OpenAPI 3.1 description of the REST API (docs/api.md has the prose), served at
 * `GET /v1/openapi.json`. A test checks that every route has an operation here and every
 * operation a route, so the two cannot drift apart silently.
 */

const iso = { type: 'string', format: 'date-time' } as const;
const isoOrNull = { type: ['string', 'null'], format: 'date-time' } as const;
const json = (schema: unknown) => ({ 'application/json': { schema } });
const ok = (description: string, schema: unknown = { type: 'object' }) => ({
  description,
  content: json(schema),
});
const ref = (name: string) => ({ $ref: `#/components/schemas/${name}` });
const errors = (...codes: number[]) =>
  Object.fromEntries(codes.map((c) => [String(c), { description: 'error', content: json(ref('Error')) }]));
const nameParam = {
  name: 'name',
  in: 'path',
  required: true,
  schema: { type: 'string', pattern: '^[a-z0-9][a-z0-9-]*$' },
};
const idParam = (what: string) => ({
  name: 'id',
  in: 'path',
  required: true,
  description: what,
  schema: { type: 'integer', minimum: 1 },
});

export const openApiDocument = {
  openapi: '3.1.0',
  info: {
    title: 'sched master REST API',
    version: '1',
    description: 'Served by every master. Bearer cluster secret on every /v1 route; see docs/api.md.',
  },
  security: [{ clusterSecret: [] }],
  paths: {
    '/healthz': { get: { summary: 'Liveness', security: [], responses: { 200: ok('alive') } } },
    '/readyz': {
      get: {
        summary: 'Readiness: lease valid and PostgreSQL answers',
        security: [],
        responses: { 200: ok('ready'), 503: ok('not ready') },
      },
    },
    '/metrics': {
      get: {
        summary: 'Prometheus metrics',
        security: [],
        responses: { 200: { description: 'text exposition format', content: { 'text/plain': {} } } },
      },
    },
    '/v1/openapi.json': { get: { summary: 'This document', responses: { 200: ok('OpenAPI document') } } },
    '/v1/cluster': {
      get: {
        summary: 'Live masters and workers',
        responses: { 200: ok('status', ref('ClusterStatus')), ...errors(401, 503) },
      },
    },
    '/v1/failovers': {
      get: {
        summary: 'Failover records',
        responses: { 200: ok('records', { type: 'array', items: ref('FailoverRecord') }), ...errors(401) },
      },
      delete: {
        summary: 'Purge old failover records',
        parameters: [{ name: 'olderThan', in: 'query', schema: { type: 'string', default: '7d' } }],
        responses: { 200: ok('removed paths'), ...errors(400, 401) },
      },
    },
    '/v1/workflows': {
      get: {
        summary: 'List workflows',
        responses: {
          200: ok('workflows', { type: 'array', items: ref('WorkflowListItem') }),
          ...errors(401),
        },
      },
      post: {
        summary: 'Apply definitions (all or nothing)',
        requestBody: {
          required: true,
          content: json({
            oneOf: [
              {
                type: 'object',
                required: ['sources'],
                properties: {
                  sources: {
                    type: 'array',
                    items: {
                      type: 'object',
                      required: ['text'],
                      properties: { label: { type: 'string' }, text: { type: 'string' } },
                    },
                  },
                },
              },
              {
                type: 'object',
                required: ['definitions'],
                properties: { definitions: { type: 'array', items: { type: 'object' } } },
              },
            ],
          }),
        },
        responses: { 200: ok('applied'), ...errors(400, 401, 422) },
      },
    },
    '/v1/workflows/{name}': {
      get: {
        summary: 'One workflow',
        parameters: [nameParam],
        responses: { 200: ok('workflow'), ...errors(401, 404) },
      },
      delete: {
        summary: 'Delete a workflow',
        parameters: [nameParam, { name: 'force', in: 'query', schema: { type: 'boolean' } }],
        responses: { 200: ok('deleted'), ...errors(401, 404, 409) },
      },
    },
    '/v1/workflows/{name}/pause': {
      post: {
        summary: 'Pause the schedule',
        parameters: [nameParam],
        responses: { 200: ok('paused'), ...errors(401, 404, 409) },
      },
    },
    '/v1/workflows/{name}/resume': {
      post: {
        summary: 'Resume the schedule',
        parameters: [nameParam],
        responses: { 200: ok('resumed'), ...errors(401, 404, 409) },
      },
    },
    '/v1/workflows/{name}/trigger': {
      post: {
        summary: 'Start a run now',
        parameters: [nameParam],
        requestBody: {
          content: json({
            type: 'object',
            properties: { params: { type: 'object', additionalProperties: { type: 'string' } } },
          }),
        },
        responses: {
          202: ok('queued', {
            type: 'object',
            properties: { commandId: { type: 'integer' }, runId: { type: ['integer', 'null'] } },
          }),
          ...errors(400, 401, 404),
        },
      },
    },
    '/v1/runs': {
      get: {
        summary: 'List runs, newest first',
        parameters: [
          { name: 'workflow', in: 'query', schema: { type: 'string' } },
          {
            name: 'state',
            in: 'query',
            schema: { enum: ['pending', 'running', 'succeeded', 'failed', 'cancelled'] },
          },
          { name: 'since', in: 'query', schema: iso },
          {
            name: 'limit',
            in: 'query',
            schema: { type: 'integer', minimum: 1, maximum: 10000, default: 100 },
          },
        ],
        responses: { 200: ok('runs', { type: 'array', items: ref('RunSummary') }), ...errors(400, 401) },
      },
    },
    '/v1/runs/{id}': {
      get: {
        summary: 'One run with tasks and attempts',
        parameters: [idParam('run id')],
        responses: { 200: ok('run', ref('RunDetail')), ...errors(400, 401, 404) },
      },
    },
    '/v1/runs/{id}/cancel': {
      post: {
        summary: 'Cancel a run',
        parameters: [idParam('run id')],
        responses: { 200: ok('cancel requested'), ...errors(401, 404, 409) },
      },
    },
    '/v1/runs/{id}/rerun': {
      post: {
        summary: 'Re-run an ended run: every task, or with fromFailed only the tasks that did not succeed',
        parameters: [idParam('run id')],
        requestBody: {
          required: false,
          content: {
            'application/json': {
              schema: { type: 'object', properties: { fromFailed: { type: 'boolean', default: false } } },
            },
          },
        },
        responses: { 202: ok('queued'), ...errors(400, 401, 404, 409) },
      },
    },
    '/v1/attempts/{id}/log': {
      get: {
        summary: "A task attempt's output (worker stream, or the stored tail)",
        parameters: [
          idParam('attempt id'),
          { name: 'follow', in: 'query', schema: { type: 'boolean', default: false } },
        ],
        responses: {
          200: { description: 'log text; X-Log-Source: worker | database', content: { 'text/plain': {} } },
          ...errors(400, 401, 404),
        },
      },
    },
  },
  components: {
    securitySchemes: {
      clusterSecret: { type: 'http', scheme: 'bearer', description: 'SCHED_CLUSTER_SECRET' },
    },
    schemas: {
      Error: {
        type: 'object',
        required: ['error'],
        properties: {
          error: {
            type: 'object',
            required: ['code', 'message'],
            properties: {
              code: { type: 'string' },
              message: { type: 'string' },
              issues: {
                type: 'array',
                items: {
                  type: 'object',
                  properties: { path: { type: 'string' }, message: { type: 'string' } },
                },
              },
            },
          },
        },
      },
      ClusterStatus: {
        type: 'object',
        required: ['masters', 'workers'],
        properties: {
          masters: {
            type: 'array',
            items: { type: 'object', required: ['address', 'startTime', 'leader', 'state', 'reportedAt'] },
          },
          workers: {
            type: 'array',
            items: {
              type: 'object',
              required: ['address', 'startTime', 'groups', 'state', 'running', 'reportedAt'],
            },
          },
        },
      },
      FailoverRecord: {
        type: 'object',
        required: ['role', 'address', 'startTime', 'failedOverAt', 'by'],
        properties: {
          role: { enum: ['master', 'worker'] },
          address: { type: 'string' },
          startTime: { type: 'integer' },
          failedOverAt: iso,
          by: { type: 'string' },
        },
      },
      WorkflowListItem: {
        type: 'object',
        required: ['name', 'version', 'tasks', 'schedule', 'nextFireTime', 'activeRuns', 'updatedAt'],
      },
      RunSummary: {
        type: 'object',
        required: ['id', 'workflow', 'state', 'fireTime', 'createdAt', 'endedAt'],
        properties: {
          id: { type: 'integer' },
          workflow: { type: 'string' },
          state: { type: 'string' },
          fireTime: isoOrNull,
          createdAt: iso,
          endedAt: isoOrNull,
        },
      },
      RunDetail: {
        type: 'object',
        required: ['id', 'workflow', 'state', 'owner', 'fireToStartMs', 'tasks'],
        properties: {
          fireToStartMs: { type: ['number', 'null'] },
          tasks: {
            type: 'array',
            items: {
              type: 'object',
              required: ['name', 'state', 'attempts'],
              properties: {
                attempts: {
                  type: 'array',
                  items: {
                    type: 'object',
                    required: [
                      'id',
                      'attempt',
                      'worker',
                      'workerStartTime',
                      'state',
                      'startedAt',
                      'endedAt',
                      'exitCode',
                    ],
                  },
                },
              },
            },
          },
        },
      },
    },
  },
} as const;
