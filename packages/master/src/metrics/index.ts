export * from './master-metrics.js';
export * from './session-state-gauge.js';
export * from './worker-metrics.js';
