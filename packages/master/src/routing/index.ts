export { ConsistentHashStrategy, hash32 } from './consistent-hash.js';
export {
  busyoverStrategy,
  failoverStrategy,
  loadScore,
  lowestLoadStrategy,
} from './load-aware-strategies.js';
export { firstStrategy, lastStrategy, RoundRobinStrategy, randomStrategy } from './positional-strategies.js';
export {
  DEFAULT_ROUTING_STRATEGY,
  parseRoutingStrategy,
  ROUTING_STRATEGIES,
  type RouteContext,
  type RoutingStrategy,
  type RoutingStrategyName,
} from './routing-strategy.js';
export { LeastFrequentlyUsedStrategy, LeastRecentlyUsedStrategy } from './usage-strategies.js';
export { WeightedRoundRobinStrategy } from './weighted-round-robin.js';
export {
  DEFAULT_WORKER_ROUTER_OPTIONS,
  type NoTargetReason,
  type RoutePlan,
  type RouteRequest,
  type ShardTarget,
  WorkerRouter,
  type WorkerRouterOptions,
} from './worker-router.js';
export {
  compareWorkers,
  hasFreeCapacity,
  isAcceptingWork,
  type WorkerState,
  type WorkerView,
} from './worker-view.js';
