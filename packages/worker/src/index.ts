export { HttpError } from '@sched/core';
// The wire contract (attempt requests, results, reports) lives in @sched/protocol.
export { AttemptRevokedError, WorkerAtCapacityError, WorkerDrainingError } from './executor/errors.js';
export { isProcessAlive, livePidsInGroup, signalGroup, terminateGroup } from './executor/process-group.js';
export { taskEnvironment } from './executor/task-environment.js';
export {
  DEFAULT_TASK_EXECUTOR_OPTIONS,
  type ExecutorEvent,
  type RevokedAttempt,
  type SubmitOutcome,
  TaskExecutor,
  type TaskExecutorOptions,
} from './executor/task-executor.js';
export {
  type ProcessGroupWatcher,
  TaskSupervisor,
  type TaskSupervisorOptions,
} from './executor/task-supervisor.js';
export {
  DEFAULT_WORKER_HTTP_SERVER_OPTIONS,
  WorkerHttpServer,
  type WorkerHttpServerOptions,
} from './http/worker-http-server.js';
export { AttemptLog } from './logs/attempt-log.js';
export { DEFAULT_LOG_STORE_OPTIONS, LogStore, type LogStoreOptions } from './logs/log-store.js';
export { reportExecutorEvents } from './reporting/executor-reports.js';
export {
  DEFAULT_HTTP_REPORT_TRANSPORT_OPTIONS,
  type HttpReportTransportOptions,
  httpReportTransport,
} from './reporting/http-report-transport.js';
export {
  DEFAULT_REPORT_BACKOFF,
  DEFAULT_REPORT_SENDER_OPTIONS,
  type ReportBackoff,
  ReportSender,
  type ReportSenderOptions,
} from './reporting/report-sender.js';
export { ReportSpool } from './reporting/report-spool.js';
export { registerWorkerMetrics, type WorkerMetrics, type WorkerMetricsNode } from './worker-metrics.js';
export {
  DEFAULT_WORKER_NODE_OPTIONS,
  WorkerNode,
  type WorkerNodeOptions,
  type WorkerNodeState,
} from './worker-node.js';
