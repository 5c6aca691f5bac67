/**
 * States of an attempt on the worker:
 *
 * | state       | meaning                                  | next                               |
 * |-------------|------------------------------------------|------------------------------------|
 * | queued      | accepted, waiting for a slot of its kind | running; killed or failed-over without starting |
 * | running     | process started (or request sent)        | succeeded, failed, timed-out, killed, failed-over |
 * | succeeded   | exit code 0 / expected HTTP status       | (final)                            |
 * | failed      | non-zero exit, signal, spawn error, bad status | (final)                      |
 * | timed-out   | the attempt's timeout fired; group killed | (final)                           |
 * | killed      | cancelled (by the master or the user); group killed | (final)                 |
 * | failed-over | killed because this worker fenced itself (session lost) or was failed over, or handed back (a drain that timed out, a stop) | (final) |
 *
 * `dispatched` is a master-side state; a `queued` attempt on the worker is still `dispatched` for
 * the master (its `running` report comes when it starts). `failed-over` is reported only after the attempt's process group is dead:
 * it is not the task's fault, so the master re-runs it per the task's failover policy (without
 * using up a retry), exactly as after the leader's failover. Were it reported `killed`, a worker
 * partitioned from ZooKeeper but not from the masters would fail the run instead (a killed
 * attempt is terminal) and the leader's failover would then find nothing to re-queue.
 */
export const FINAL_ATTEMPT_STATES = ['succeeded', 'failed', 'timed-out', 'killed', 'failed-over'] as const;
export type FinalAttemptState = (typeof FINAL_ATTEMPT_STATES)[number];
/** `queued`: accepted, waiting for a free slot of its kind (task-executor.ts); nothing started yet. */
export type AttemptState = 'queued' | 'running' | FinalAttemptState;

export interface AttemptResult {
  attemptId: string;
  state: FinalAttemptState;
  /** Exit code of the task process; null for http/noop tasks and when killed by a signal. */
  exitCode: number | null;
  /** Signal that ended the task process, e.g. `SIGTERM`; null otherwise. */
  signal: string | null;
  /** HTTP status of an http task; null otherwise. */
  httpStatus: number | null;
  /** ISO 8601. */
  startedAt: string;
  /** ISO 8601. */
  endedAt: string;
  /** Measured on the monotonic clock. */
  durationMs: number;
  /** The last bytes of the output (the whole output when small). */
  logTail: string;
  /** Bytes of output produced. */
  logBytes: number;
  /** Whether the log file hit its size cap. */
  logTruncated: boolean;
  /** Why sched considers it failed when the exit code alone does not say (spawn error, bad status, timeout). */
  error: string | null;
}

export interface AttemptSnapshot {
  attemptId: string;
  state: AttemptState;
  /** ISO 8601; null while queued. */
  startedAt: string | null;
  /** Process group id of a process task while it runs. */
  pgid: number | null;
  result: AttemptResult | null;
}
