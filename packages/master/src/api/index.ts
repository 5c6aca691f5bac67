export * from './api-node.js';
export * from './api-routes.js';
export * from './api-schemas.js';
export * from './cluster-status.js';
export * from './run-json.js';
