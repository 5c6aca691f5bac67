import { type Issue, SchedError } from '@sched/core';
import { WireError } from './wire-errors.js';

/** A request on the wire is malformed; `issues` name each bad field. */
export class InvalidRequestError extends SchedError {
  readonly issues: readonly Issue[];

  constructor(issues: readonly Issue[]) {
    const lines = issues.map((i) => (i.path ? `${i.path}: ${i.message}` : i.message));
    super(WireError.RequestInvalid, `invalid request: ${lines.join('; ')}`, { retriable: false });
    this.issues = issues;
  }
}
