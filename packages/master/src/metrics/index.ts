export * from './master-metrics.js';
