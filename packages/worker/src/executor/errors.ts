import { SchedError } from '@sched/core';
import { WireError } from '@sched/protocol';

/**
 * Every slot of the task's kind is taken and the backlog is full; the master should try another
 * worker or wait.
 */
export class WorkerAtCapacityError extends SchedError {
  constructor(capacity: number, kind: 'process' | 'http' = 'process', backlog = 0) {
    super(
      WireError.WorkerAtCapacity,
      `worker is busy: all ${capacity} ${kind} slots are taken and its backlog of ${backlog} waiting attempts is full; try another worker`,
      { retriable: true },
    );
  }
}

/** The worker is draining (shutting down gracefully) and takes no new task. */
export class WorkerDrainingError extends SchedError {
  constructor() {
    super(WireError.WorkerDraining, 'worker is draining and accepts no new task; try another worker', {
      retriable: true,
    });
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
      WireError.AttemptRevoked,
      `attempt ${attemptId} (dispatch ${dispatchSeq}) was revoked on this worker: a master found it was not delivered and gave it to another worker; not started`,
      { retriable: false },
    );
  }
}
