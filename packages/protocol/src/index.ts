// The master ↔ worker wire contract (docs/transport.md): every message, its validation, the
// error codes, the attempt states and the protocol version. Both master and worker import it;
// neither imports the other.

export {
  type AttemptReport,
  attemptReportProblem,
  attemptReportSchema,
  attemptResultSchema,
  finishedReport,
  isAttemptReport,
  MAX_REPORTS_PER_BATCH,
  type NewAttemptReport,
  type ReportAck,
  reportAckSchema,
  runningReport,
} from './attempt-report.js';
export {
  type AttemptRequest,
  DISPATCH_SEQ_MAX,
  type HttpTask,
  ID_PATTERN,
  type NoopTask,
  parseAttemptRequest,
  parseRevokeRequest,
  type RevokeItem,
  type RevokeRequest,
  type ScriptTask,
  type ShellTask,
  type TaskSpec,
} from './attempt-request.js';
export {
  type AttemptResult,
  type AttemptSnapshot,
  type AttemptState,
  FINAL_ATTEMPT_STATES,
  type FinalAttemptState,
} from './attempt-result.js';
export {
  type AttemptSnapshotAnswer,
  attemptSnapshotSchema,
  WORKER_ATTEMPT_STATES,
  wireAttemptResultSchema,
} from './attempt-snapshot.js';
export {
  type DispatchAnswer,
  type DispatchResult,
  dispatchBatchAnswerSchema,
  dispatchResultSchema,
  errorAnswerSchema,
  revokeAnswerSchema,
} from './dispatch-answer.js';
export { InvalidRequestError } from './errors.js';
export { PROTOCOL_HEADER, PROTOCOL_VERSION, protocolMismatch } from './version.js';
export { WireError, type WireErrorCode } from './wire-errors.js';
