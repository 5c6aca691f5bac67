// The OpenAPI document and the route table cannot drift apart: every route has an operation
// (same method, a path the route matches, public exactly when the operation needs no secret)
// and every operation has a route. In process; no cluster needed.

import { createLogger } from '@sched/core';
import { apiRoutes, metricsRoute, openApiDocument } from '@sched/master';
import { Registry } from 'prom-client';
import { describe, expect, test } from 'vitest';

const fakeNode = {
  key: 'k',
  address: 'a',
  pool: undefined as never,
  session: undefined,
  paths: undefined,
  mastersView: undefined,
  isLeader: false,
  leaseValid: () => false,
  driver: undefined,
};
const routes = [
  ...apiRoutes({ node: fakeNode, secret: 's', logger: createLogger({ level: 'error' }) }),
  metricsRoute(new Registry()),
];
const sample = (path: string) => path.replace('{name}', 'nightly-report').replace('{id}', '42');
const operations = Object.entries(openApiDocument.paths).flatMap(([path, ops]) =>
  Object.entries(ops as Record<string, { security?: unknown[] }>).map(([method, op]) => ({
    path,
    method: method.toUpperCase(),
    public: Array.isArray(op.security) && op.security.length === 0,
  })),
);

describe('OpenAPI document vs routes', () => {
  test('every operation has exactly one route, with the same authentication', () => {
    for (const op of operations) {
      const matching = routes.filter((r) => r.method === op.method && r.pattern.test(sample(op.path)));
      expect(matching, `${op.method} ${op.path}`).toHaveLength(1);
      expect(Boolean(matching[0]?.public), `${op.method} ${op.path} public`).toBe(op.public);
    }
  });

  test('every route is documented', () => {
    for (const r of routes) {
      const documented = operations.some((op) => op.method === r.method && r.pattern.test(sample(op.path)));
      expect(documented, `${r.method} ${r.pattern}`).toBe(true);
    }
    expect(routes.length).toBe(operations.length);
  });
});
