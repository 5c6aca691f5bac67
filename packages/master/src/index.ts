export {};
export * from './routing/index.js';
