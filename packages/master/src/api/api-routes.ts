import type { Route } from '@sched/core';
import type { ApiDeps } from './api-node.js';
import { attemptLogRoute } from './attempt-log-route.js';
import { clusterRoutes } from './cluster-routes.js';
import { definitionRoutes } from './definition-routes.js';
import { healthRoutes } from './health-routes.js';
import { openApiDocument } from './openapi.js';
import { runRoutes } from './run-routes.js';

/**
 * The master's REST API (docs/api.md): every route needs `Authorization: Bearer <cluster secret>`
 * except the probes `/healthz` and `/readyz`. Errors are `{ error: { code, message, issues? } }`.
 */
export function apiRoutes(deps: ApiDeps): Route[] {
  return [
    ...healthRoutes(deps.node),
    ...clusterRoutes(deps),
    ...definitionRoutes(deps),
    ...runRoutes(deps),
    attemptLogRoute(deps),
    {
      method: 'GET',
      pattern: /^\/v1\/openapi\.json$/,
      handle: () => ({ status: 200, body: openApiDocument }),
    },
  ];
}
