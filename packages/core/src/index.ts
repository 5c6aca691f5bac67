export { type Clock, FakeClock, sleep, systemClock } from './clock.js';
export {
  envTable,
  type LoadConfigOptions,
  loadConfig,
  readConfigFile,
  scrubSecretEnvironment,
  secretEnvironmentNames,
  secretFileTable,
} from './config.js';
export { type ConfigRow, describeConfig, renderConfigReference } from './config-reference.js';
export {
  configSchema,
  LOG_LEVELS,
  type LogLevel,
  MIN_CLUSTER_SECRET_BYTES,
  type SchedConfig,
} from './config-schema.js';
export {
  configWarnings,
  grantedSessionTimeoutWarnings,
  minimumSafeFailoverDelayMs,
} from './config-warnings.js';
export { durationSchema, formatDuration, parseDuration } from './duration.js';
export {
  ConfigError,
  DefinitionError,
  FencedWriteError,
  formatIssues,
  type Issue,
  NotFoundError,
  SchedError,
  type SchedErrorOptions,
  SessionLostError,
  TimeoutError,
  UsageError,
} from './errors.js';
export { type HostLoad, HostLoadSampler } from './host-load.js';
export {
  errorBody,
  HttpError,
  JsonHttpServer,
  type JsonHttpServerOptions,
  onClientError,
  type RequestContext,
  type Route,
  type RouteResult,
  rawErrorResponse,
  sendJson,
} from './http/json-http-server.js';
export {
  boundIdentity,
  dialAddress,
  type Incarnation,
  incarnationAddress,
  incarnationKey,
  isValidAddress,
  isValidHost,
  type ParsedIncarnationKey,
  type PeerMap,
  parseIncarnationKey,
} from './identity.js';
export { issuePath } from './issue-path.js';
export { type CreateLoggerOptions, createLogger, type Logger, redactConfig, redactUrl } from './logger.js';
export { type WithDefaults, withDefaults } from './options.js';
export { SCHED_VERSION } from './version.js';
export { requireZkCredentials, type ZkAccessMode, zkInsecureWarning } from './zk-credentials.js';
