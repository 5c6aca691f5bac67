/**
 * Every error code a worker or a master puts on the wire between them (`{ error: { code,
 * message } }` bodies and per-attempt answers of a batch). Compare codes against these names,
 * never against bare strings: a renamed code then fails to compile instead of silently never
 * matching.
 */
export const WireError = {
  /** 400: the body is malformed; `issues` name each bad field. Nothing ran. */
  RequestInvalid: 'REQUEST_INVALID',
  /** 400: the peer speaks another protocol version (`version.ts`). Nothing ran. */
  ProtocolMismatch: 'PROTOCOL_MISMATCH',
  /** 401: no or a wrong cluster secret. */
  Unauthenticated: 'UNAUTHENTICATED',
  /** 404: the worker does not know the attempt. */
  NotFound: 'NOT_FOUND',
  /** 409: the dispatch names another incarnation (key) than this worker's. */
  WrongIncarnation: 'WRONG_INCARNATION',
  /** 409: the dispatch names another registration (czxid) of this worker. */
  WrongRegistration: 'WRONG_REGISTRATION',
  /** 409: a master revoked this dispatch of the attempt; it never starts here. */
  AttemptRevoked: 'ATTEMPT_REVOKED',
  /** 429: busy — every slot of the task's kind is taken and the backlog is full. */
  WorkerAtCapacity: 'WORKER_AT_CAPACITY',
  /** 503: the worker is draining (or its session is suspended or lost). */
  WorkerDraining: 'WORKER_DRAINING',
  /** 500: the worker failed to handle it. */
  Internal: 'INTERNAL',
  /** Master side: the reports batch is malformed. */
  ReportsInvalid: 'REPORTS_INVALID',
  /** Master side: one report of a batch is not one sched can apply. */
  ReportInvalid: 'REPORT_INVALID',
  /** Master side: PostgreSQL cannot be reached; the batch is not acknowledged (retried). */
  StoreUnavailable: 'STORE_UNAVAILABLE',
} as const;

export type WireErrorCode = (typeof WireError)[keyof typeof WireError];
