export * from './routing/index.js';
export * from './scheduler/index.js';
