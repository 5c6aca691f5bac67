export * from './command-processor.js';
export * from './fire-plan.js';
export * from './schedule-firer.js';
export * from './slot-assignment.js';
export * from './staged-runs.js';
