import { type Issue, SchedError } from '@sched/core';

/**
 * Every slot of the task's kind is taken and the backlog is full; the master should try another
 * worker or wait.
 */
export class WorkerAtCapacityError extends SchedError {
  constructor(capacity: number, kind: 'process' | 'http' = 'process', backlog = 0) {
    super(
      'WORKER_AT_CAPACITY',
      `worker is busy: all ${capacity} ${kind} slots are taken and its backlog of ${backlog} waiting attempts is full; try another worker`,
      { retriable: true },
    );
  }
}

/** The worker is draining (shutting down gracefully) and takes no new task. */
export class WorkerDrainingError extends SchedError {
  constructor() {
    super('WORKER_DRAINING', 'worker is draining and accepts no new task; try another worker', {
      retriable: true,
    });
  }
}

/** A dispatch request is malformed; `issues` name each bad field. */
export class InvalidRequestError extends SchedError {
  readonly issues: readonly Issue[];

  constructor(issues: readonly Issue[]) {
    const lines = issues.map((i) => (i.path ? `${i.path}: ${i.message}` : i.message));
    super('REQUEST_INVALID', `invalid request: ${lines.join('; ')}`, { retriable: false });
    this.issues = issues;
  }
}

/**
 * A master revoked this dispatch of the attempt (`POST /v1/attempts/revoke`): it found the
 * dispatch was not delivered and gave the attempt to another worker, so this late copy must never
 * start. Not retriable: the same dispatch will always be refused; a new assignment (higher
 * `dispatchSeq`) is not.
 */
export class AttemptRevokedError extends SchedError {
  constructor(
    readonly attemptId: string,
    readonly dispatchSeq: number,
  ) {
    super(
      'ATTEMPT_REVOKED',
      `attempt ${attemptId} (dispatch ${dispatchSeq}) was revoked on this worker: a master found it was not delivered and gave it to another worker; not started`,
      { retriable: false },
    );
  }
}
