// Checks HTTP responses of a master against the OpenAPI document it serves (generated from the
// routes' zod schemas): the route and status must be documented and a JSON body must validate
// against that status's schema (ajv, JSON Schema 2020-12 as OpenAPI 3.1 uses it).
import { openApiDocument } from '@sched/master';
import { Ajv2020, type ValidateFunction } from 'ajv/dist/2020.js';
import addFormatsModule from 'ajv-formats';

export interface RecordedResponse {
  method: string;
  path: string;
  status: number;
  contentType: string | null;
  body: string;
}

type Json = Record<string, unknown>;

const document = openApiDocument();
const components = (document.components as { schemas: Record<string, Json> }).schemas;
// ajv-formats is CommonJS with a default export.
const addFormats = ((addFormatsModule as unknown as { default?: unknown }).default ?? addFormatsModule) as (
  ajv: Ajv2020,
) => void;
const ajv = new Ajv2020({ strict: false, allErrors: true });
addFormats(ajv);

/** `#/components/schemas/X` references replaced by X itself (the document's only references). */
function resolve(schema: unknown): unknown {
  if (Array.isArray(schema)) return schema.map(resolve);
  if (schema === null || typeof schema !== 'object') return schema;
  const ref = (schema as Json).$ref;
  if (typeof ref === 'string' && ref.startsWith('#/components/schemas/')) {
    return resolve(components[ref.slice('#/components/schemas/'.length)]);
  }
  return Object.fromEntries(Object.entries(schema).map(([k, v]) => [k, resolve(v)]));
}

interface Operation {
  method: string;
  pattern: RegExp;
  template: string;
  responses: Record<string, { content?: Record<string, { schema?: unknown }> }>;
}

const operations: Operation[] = Object.entries(document.paths).flatMap(([template, ops]) =>
  Object.entries(ops as Record<string, { responses: Operation['responses'] }>).map(([method, op]) => ({
    method: method.toUpperCase(),
    template,
    pattern: new RegExp(`^${template.replace(/\{[^}]+\}/g, '[^/]+')}$`),
    responses: op.responses,
  })),
);

const validators = new Map<unknown, ValidateFunction>();
function validatorOf(schema: unknown): ValidateFunction {
  let v = validators.get(schema);
  if (!v) {
    v = ajv.compile(resolve(schema) as Json);
    validators.set(schema, v);
  }
  return v;
}

/** What is wrong with one response, or null when the document describes it. */
export function contractViolation(r: RecordedResponse): string | null {
  const path = r.path.split('?')[0] ?? '';
  const what = `${r.method} ${r.path} → ${r.status}`;
  const op = operations.find((o) => o.method === r.method && o.pattern.test(path));
  if (!op) {
    // An undocumented route must be refused as such.
    return r.status === 404 || r.status === 405 || r.status === 401
      ? null
      : `${what}: no such operation in the document`;
  }
  const spec = op.responses[String(r.status)] ?? op.responses.default;
  if (!spec) return `${what}: status not documented for ${op.method} ${op.template}`;
  const isJson = (r.contentType ?? '').startsWith('application/json');
  const content = spec.content ?? {};
  if (!isJson) {
    const documented = Object.keys(content).some((t) => (r.contentType ?? '').startsWith(t));
    return documented
      ? null
      : `${what}: content type ${r.contentType} not documented (${Object.keys(content).join(', ')})`;
  }
  const schema = content['application/json']?.schema;
  if (schema === undefined) return `${what}: a JSON body, but the document gives none for this status`;
  let body: unknown;
  try {
    body = JSON.parse(r.body);
  } catch {
    return `${what}: the body is not JSON`;
  }
  const validate = validatorOf(schema);
  if (validate(body)) return null;
  return `${what}: ${ajv.errorsText(validate.errors, { dataVar: 'body' })}; body: ${r.body.slice(0, 300)}`;
}

/** Throws listing every response the document does not describe. */
export function assertContract(responses: readonly RecordedResponse[], context: string): void {
  const problems = responses.map(contractViolation).filter((p): p is string => p !== null);
  if (problems.length > 0) {
    throw new Error(
      `${context}: ${problems.length} response(s) break the OpenAPI document:\n${problems.join('\n')}`,
    );
  }
}

/** `fetch`, with the answer checked against the document (the body is read and returned too). */
export async function checkedFetch(
  url: string,
  init: RequestInit = {},
): Promise<{ res: Response; text: string }> {
  const res = await fetch(url, init);
  const text = await res.text();
  const u = new URL(url);
  assertContract(
    [
      {
        method: (init.method ?? 'GET').toUpperCase(),
        path: u.pathname + u.search,
        status: res.status,
        contentType: res.headers.get('content-type'),
        body: text,
      },
    ],
    `fetch ${url}`,
  );
  return { res, text };
}
