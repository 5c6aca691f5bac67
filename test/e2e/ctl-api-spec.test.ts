// The OpenAPI document is generated from the routes the master serves (their zod schemas), so
// it cannot list another API. What is checked here: every response it describes has a real
// schema (never a bare object), errors are documented on every operation, the shipped copy in
// docs/openapi.json is current, and the contract check the e2e suite runs on every response
// (api-contract.ts) does refuse a response that breaks the document. In process; no cluster.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { openApiDocument } from '@sched/master';
import { describe, expect, test } from 'vitest';
import { contractViolation } from './api-contract.js';

type Json = Record<string, unknown>;
const doc = openApiDocument();
const operations = Object.entries(doc.paths).flatMap(([path, ops]) =>
  Object.entries(ops as Record<string, Json>).map(([method, op]) => ({ path, method, op })),
);

/** A schema that says nothing beyond "an object" (or nothing at all). */
function bare(schema: Json): boolean {
  if (schema.$ref) return false;
  for (const k of ['anyOf', 'oneOf', 'allOf'] as const) {
    const parts = schema[k];
    if (Array.isArray(parts)) return parts.some((p) => bare(p as Json));
  }
  if (schema.type === 'array') return schema.items === undefined || bare(schema.items as Json);
  if (schema.type === 'object' || schema.type === undefined) {
    const props = schema.properties as Json | undefined;
    return props === undefined || Object.keys(props).length === 0;
  }
  return false;
}

describe('the generated OpenAPI document', () => {
  test('describes every JSON response with a schema that is not a bare object', () => {
    expect(operations.length).toBeGreaterThanOrEqual(17);
    const bareOnes: string[] = [];
    for (const { path, method, op } of operations) {
      for (const [status, response] of Object.entries(op.responses as Record<string, Json>)) {
        const content = (response.content ?? {}) as Record<string, { schema: Json }>;
        expect(Object.keys(content).length, `${method} ${path} ${status} has content`).toBeGreaterThan(0);
        const schema = content['application/json']?.schema;
        if (schema && bare(schema)) bareOnes.push(`${method} ${path} ${status}`);
      }
    }
    expect(bareOnes).toEqual([]);
  });

  test('every operation documents its errors: 401 unless public, 400 when it takes input, a default', () => {
    for (const { path, method, op } of operations) {
      const responses = op.responses as Record<string, unknown>;
      const isPublic = Array.isArray(op.security) && op.security.length === 0;
      expect('401' in responses, `${method} ${path} 401`).toBe(!isPublic);
      if (op.parameters || op.requestBody) expect('400' in responses, `${method} ${path} 400`).toBe(true);
      expect('default' in responses, `${method} ${path} default`).toBe(true);
    }
    const publicOnes = operations
      .filter(({ op }) => Array.isArray(op.security) && op.security.length === 0)
      .map(({ method, path }) => `${method} ${path}`)
      .sort();
    expect(publicOnes).toEqual(['get /healthz', 'get /metrics', 'get /readyz']);
  });

  test('docs/openapi.json is the generated document (regenerate: npm run gen:docs)', () => {
    const shipped = JSON.parse(readFileSync(join(import.meta.dirname, '../../docs/openapi.json'), 'utf8'));
    expect(shipped).toEqual(JSON.parse(JSON.stringify(doc)));
  });

  test('the contract check refuses what the document does not describe, and passes what it does', () => {
    const run = {
      id: 7,
      workflow: 'w',
      state: 'succeeded',
      fireTime: null,
      createdAt: '2026-01-01T00:00:00.000Z',
      endedAt: '2026-01-01T00:00:01.000Z',
      trigger: 'manual',
      startedAt: '2026-01-01T00:00:00.500Z',
    };
    const ok = {
      method: 'GET',
      path: '/v1/runs?limit=1',
      status: 200,
      contentType: 'application/json; charset=utf-8',
      body: JSON.stringify([run]),
    };
    expect(contractViolation(ok)).toBeNull();
    expect(contractViolation({ ...ok, body: JSON.stringify([{ ...run, state: 'sleeping' }]) })).toContain(
      'must be equal to one of the allowed values',
    );
    expect(
      contractViolation({ ...ok, body: JSON.stringify([{ ...run, createdAt: 'yesterday' }]) }),
    ).toContain('must match format "date-time"');
    const { id: _dropped, ...withoutId } = run;
    expect(contractViolation({ ...ok, body: JSON.stringify([withoutId]) })).toContain(
      "must have required property 'id'",
    );
    expect(contractViolation({ ...ok, path: '/v1/runs/7/explode', method: 'POST' })).toContain(
      'no such operation in the document',
    );
    expect(
      contractViolation({ ...ok, status: 400, body: JSON.stringify({ error: { code: 'REQUEST_INVALID' } }) }),
    ).toContain("must have required property 'message'");
    expect(contractViolation({ ...ok, status: 404, path: '/v1/nothing', body: '{}' })).toBeNull();
  });
});
