import { SchedError } from '@sched/core';

/**
 * Why the harness itself failed (not the code under test):
 *   TESTKIT_NOT_INSTALLED     a Debian package (zookeeper, postgresql) is missing
 *   TESTKIT_SERVER_START      a server did not come up (the message names its log file)
 *   TESTKIT_SPAWN             a child process could not be spawned
 *   TESTKIT_INVALID_ARGUMENT  a harness function got a bad argument
 *   TESTKIT_SHARED_SERVER     a test tried to stop a shared server, or the handoff is broken
 *   TESTKIT_TIMEOUT           a harness operation took too long
 */
export type HarnessErrorCode =
  | 'TESTKIT_NOT_INSTALLED'
  | 'TESTKIT_SERVER_START'
  | 'TESTKIT_SPAWN'
  | 'TESTKIT_INVALID_ARGUMENT'
  | 'TESTKIT_SHARED_SERVER'
  | 'TESTKIT_TIMEOUT';

export class HarnessError extends SchedError {
  declare readonly code: HarnessErrorCode;

  constructor(code: HarnessErrorCode, message: string, opts: { cause?: unknown; retriable?: boolean } = {}) {
    super(code, message, opts);
  }
}
