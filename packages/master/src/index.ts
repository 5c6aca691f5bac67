export * from './api/index.js';
export * from './dispatch/attempt-request.js';
export * from './dispatch/worker-client.js';
export * from './failover/failover-coordinator.js';
export * from './failover/failover-queries.js';
export * from './http/api-route.js';
export * from './http/master-http-server.js';
export * from './http/master-routes.js';
export {
  documentAs,
  errorSchema,
  generateOpenApi,
  jsonSchemaOf,
  type OpenApiDocument,
} from './http/openapi.js';
export * from './http/zod-issues.js';
export * from './master-node.js';
export * from './metrics/index.js';
export * from './reports/report-applier.js';
export * from './retention/run-retention.js';
export * from './routing/index.js';
export * from './runs/dag-planner.js';
export * from './runs/run-driver.js';
export * from './runs/run-wake-channel.js';
export * from './scheduler/index.js';
