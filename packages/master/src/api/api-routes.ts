import { createLogger, SCHED_VERSION } from '@sched/core';
import { Registry } from 'prom-client';
import { z } from 'zod';
import { type ApiRoute, defineRoute, jsonResponse } from '../http/api-route.js';
import { reportRoutes } from '../http/master-routes.js';
import { generateOpenApi, type OpenApiDocument } from '../http/openapi.js';
import { metricsRoute } from '../metrics/master-metrics.js';
import type { ReportApplier } from '../reports/report-applier.js';
import type { ApiDeps } from './api-node.js';
import { attemptLogRoute } from './attempt-log-route.js';
import { clusterRoutes } from './cluster-routes.js';
import { definitionRoutes } from './definition-routes.js';
import { healthRoutes } from './health-routes.js';
import { runRoutes } from './run-routes.js';

/**
 * The master's REST API (docs/api.md): every route needs `Authorization: Bearer <cluster secret>`
 * except the probes `/healthz` and `/readyz`. Errors are `{ error: { code, message, issues? } }`.
 */
export function apiRoutes(deps: ApiDeps): ApiRoute[] {
  return [
    ...healthRoutes(deps.node),
    ...clusterRoutes(deps),
    ...definitionRoutes(deps),
    ...runRoutes(deps),
    attemptLogRoute(deps),
  ];
}

export interface MasterRoutesDeps {
  api: ApiDeps;
  reports: Pick<ReportApplier, 'apply'>;
  /** `GET /metrics` (`MasterMetrics.route()`). */
  metrics: ApiRoute;
}

/**
 * Everything a master serves on its one port: the REST API, the workers' reports, the metrics,
 * and the OpenAPI document generated from all of them (`GET /v1/openapi.json`).
 */
export function masterRoutes(deps: MasterRoutesDeps): ApiRoute[] {
  let document: OpenApiDocument | undefined;
  const routes: ApiRoute[] = [
    ...apiRoutes(deps.api),
    ...reportRoutes(deps.reports),
    deps.metrics,
    defineRoute({
      method: 'GET',
      url: '/v1/openapi.json',
      summary: 'This document: the OpenAPI 3.1 description of every route',
      tags: ['meta'],
      responses: {
        200: jsonResponse(
          z.looseObject({
            openapi: z.literal('3.1.0'),
            info: z.looseObject({ title: z.string(), version: z.string() }),
            paths: z.record(z.string(), z.record(z.string(), z.unknown())),
            components: z.record(z.string(), z.unknown()),
          }),
          'an OpenAPI 3.1 document',
        ),
      },
      handler: () => {
        document ??= generateOpenApi(routes, SCHED_VERSION);
        return { status: 200, body: document };
      },
    }),
  ];
  return routes;
}

/** The OpenAPI document as every master serves it, built without a master (tests, docs). */
export function openApiDocument(): OpenApiDocument {
  const inert = {
    key: '',
    address: '',
    pool: undefined as never,
    session: undefined,
    paths: undefined,
    mastersView: undefined,
    isLeader: false,
    leaseValid: () => false,
    driver: undefined,
  };
  const routes = masterRoutes({
    api: { node: inert, secret: 'unused', logger: createLogger({ level: 'silent' }) },
    reports: { apply: () => Promise.reject(new Error('not a master')) },
    metrics: metricsRoute(new Registry()),
  });
  return generateOpenApi(routes, SCHED_VERSION);
}
