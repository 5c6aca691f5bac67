export { HttpError } from '@sched/core';
// The wire contract (attempt requests, results, reports) lives in @sched/protocol.
export { AttemptRevokedError, WorkerAtCapacityError, WorkerDrainingError } from './executor/errors.js';
export { isProcessAlive, livePidsInGroup, signalGroup, terminateGroup } from './executor/process-group.js';
export { taskEnvironment } from './executor/task-environment.js';
export {
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
export { WorkerHttpServer, type WorkerHttpServerOptions } from './http/worker-http-server.js';
export { AttemptLog } from './logs/attempt-log.js';
export { LogStore, type LogStoreOptions } from './logs/log-store.js';
export { reportExecutorEvents } from './reporting/executor-reports.js';
export { type HttpReportTransportOptions, httpReportTransport } from './reporting/http-report-transport.js';
export { type ReportBackoff, ReportSender, type ReportSenderOptions } from './reporting/report-sender.js';
export { ReportSpool } from './reporting/report-spool.js';
export { registerWorkerMetrics, type WorkerMetrics, type WorkerMetricsNode } from './worker-metrics.js';
export { WorkerNode, type WorkerNodeOptions, type WorkerNodeState } from './worker-node.js';
