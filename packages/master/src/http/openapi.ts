import { z } from 'zod';
import type { ApiRoute, ResponseSpec } from './api-route.js';

/**
 * The OpenAPI 3.1 document of the master's HTTP endpoint, generated from the routes it serves:
 * each operation's parameters, body and responses are the JSON Schemas (draft 2020-12, which
 * OpenAPI 3.1 uses as is) of the zod schemas the server validates with. Served at
 * `GET /v1/openapi.json`; docs/api.md has the prose.
 */

type JsonSchema = Record<string, unknown>;

export const errorSchema = z
  .object({
    error: z.object({
      code: z.string().describe('A stable, machine-readable code: NOT_FOUND, REQUEST_INVALID, …'),
      message: z.string().describe('What was wrong and what is accepted, for people.'),
      issues: z
        .array(z.object({ path: z.string(), message: z.string() }))
        .optional()
        .describe('Every problem of the request, each with its path.'),
    }),
  })
  .describe('An error. Every non-2xx answer has this body.');

const documented = new WeakMap<object, JsonSchema>();

/**
 * Shows `schema` in the document as `json`: for a part the route checks itself with a richer
 * validator than zod (a workflow definition, whose file format has its own generated JSON
 * Schema, docs/definition.schema.json).
 */
export function documentAs<T extends z.ZodType>(schema: T, json: JsonSchema): T {
  const { $schema: _schema, $id: _id, ...rest } = json;
  documented.set(schema, rest);
  return schema;
}

/** A zod schema as JSON Schema, inline (no `$defs`, which would not resolve inside the document). */
export function jsonSchemaOf(schema: z.ZodType, io: 'input' | 'output'): JsonSchema {
  const out = z.toJSONSchema(schema, {
    target: 'draft-2020-12',
    io,
    unrepresentable: 'any',
    reused: 'inline',
    override: (ctx) => {
      const json = documented.get(ctx.zodSchema);
      if (!json) return;
      for (const k of Object.keys(ctx.jsonSchema)) delete (ctx.jsonSchema as JsonSchema)[k];
      Object.assign(ctx.jsonSchema, structuredClone(json));
    },
  }) as JsonSchema;
  delete out.$schema;
  return out;
}

const errorResponse = (description: string) => ({
  description,
  content: { 'application/json': { schema: { $ref: '#/components/schemas/Error' } } },
});

function response(spec: ResponseSpec) {
  if (spec.kind === 'text') {
    return { description: spec.description, content: { [spec.contentType]: { schema: { type: 'string' } } } };
  }
  return {
    description: spec.description,
    content: { 'application/json': { schema: jsonSchemaOf(spec.schema, 'output') } },
  };
}

function parameters(schema: z.ZodType | undefined, where: 'path' | 'query') {
  if (!(schema instanceof z.ZodObject)) return [];
  return Object.entries(schema.shape as Record<string, z.ZodType>).map(([name, field]) => {
    const js = jsonSchemaOf(field, 'input');
    const description = typeof js.description === 'string' ? js.description : undefined;
    delete js.description;
    return {
      name,
      in: where,
      required: where === 'path' || !field.safeParse(undefined).success,
      ...(description ? { description } : {}),
      schema: js,
    };
  });
}

function operation(r: ApiRoute) {
  const hasInput = r.params !== undefined || r.query !== undefined || r.body !== undefined;
  const responses: Record<string, unknown> = {};
  for (const [status, spec] of Object.entries(r.responses)) responses[status] = response(spec);
  const generic: [string, string, boolean][] = [
    ['400', 'The request is malformed: every problem is listed in `error.issues`', hasInput],
    ['401', 'Missing or wrong cluster secret', !r.public],
    ['413', 'The body is larger than this route accepts', r.body !== undefined],
    ['415', 'The body is not application/json', r.body !== undefined],
  ];
  for (const [status, description, applies] of generic) {
    if (applies && !(status in responses)) responses[status] = errorResponse(description);
  }
  responses.default = errorResponse('Any other error (500 INTERNAL; 503 while the master starts or stops)');
  const params = [...parameters(r.params, 'path'), ...parameters(r.query, 'query')];
  return {
    operationId: operationId(r),
    summary: r.summary,
    ...(r.description ? { description: r.description } : {}),
    tags: [...r.tags],
    ...(r.public ? { security: [] } : {}),
    ...(params.length > 0 ? { parameters: params } : {}),
    ...(r.body
      ? {
          requestBody: {
            required: !r.body.safeParse(undefined).success,
            content: { 'application/json': { schema: jsonSchemaOf(r.documentedBody ?? r.body, 'input') } },
          },
        }
      : {}),
    responses,
  };
}

/** `GET /v1/runs/:id/cancel` → `getRunsIdCancel`: stable and unique per method and path. */
function operationId(r: ApiRoute): string {
  const words = r.url
    .split('/')
    .filter((s) => s && s !== 'v1')
    .map((s) =>
      s
        .replace(/^:/, '')
        .replace(/[^A-Za-z0-9]+(.)?/g, (_, c: string | undefined) => (c ?? '').toUpperCase()),
    );
  return r.method.toLowerCase() + words.map((w) => w.charAt(0).toUpperCase() + w.slice(1)).join('');
}

export interface OpenApiDocument {
  openapi: '3.1.0';
  info: { title: string; version: string; description: string };
  security: Record<string, string[]>[];
  paths: Record<string, Record<string, ReturnType<typeof operation>>>;
  components: Record<string, unknown>;
}

export function generateOpenApi(routes: readonly ApiRoute[], version: string): OpenApiDocument {
  const paths: OpenApiDocument['paths'] = {};
  for (const r of routes) {
    const path = r.url.replace(/:([A-Za-z0-9_]+)/g, '{$1}');
    paths[path] ??= {};
    (paths[path] as Record<string, unknown>)[r.method.toLowerCase()] = operation(r);
  }
  return {
    openapi: '3.1.0',
    info: {
      title: 'sched master HTTP API',
      version,
      description:
        'Served by every master: the REST API (docs/api.md), the workers\u2019 reports (docs/transport.md), ' +
        'probes and metrics. Every route needs `Authorization: Bearer <cluster secret>` unless it says ' +
        '`security: []`. Generated from the zod schemas the master validates with.',
    },
    security: [{ clusterSecret: [] }],
    paths,
    components: {
      securitySchemes: { clusterSecret: { type: 'http', scheme: 'bearer' } },
      schemas: { Error: jsonSchemaOf(errorSchema, 'output') },
    },
  };
}
