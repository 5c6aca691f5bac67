/**
 * The sched error hierarchy. Every error sched throws on purpose is a `SchedError` with a
 * stable `code` (callers and tests branch on it, never on the message) and a `retriable`
 * flag that retry loops read (kafkajs style): `true` means the same call may succeed later
 * without anyone changing anything (a lost session, a timeout); `false` means it won't.
 */

/** One problem in a piece of user input: where it is (`zk.sessionTimeout`, `tasks[1].name`) and what is wrong. */
export interface Issue {
  path: string;
  message: string;
  /** Where the bad value came from when the path alone would not say, e.g. `SCHED_ZK_SESSION_TIMEOUT`. */
  source?: string;
}

export interface SchedErrorOptions {
  retriable?: boolean;
  cause?: unknown;
}

export class SchedError extends Error {
  readonly code: string;
  readonly retriable: boolean;

  constructor(code: string, message: string, opts: SchedErrorOptions = {}) {
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.name = new.target.name;
    this.code = code;
    this.retriable = opts.retriable ?? false;
  }
}

/**
 * Renders issues one per line as `path: message`, `source (path): message` when the value
 * came from somewhere the path does not name (an environment variable), or the bare
 * message when there is no path.
 */
export function formatIssues(issues: readonly Issue[]): string {
  return issues.map(formatIssue).join('\n');
}

function formatIssue(i: Issue): string {
  const where = i.source ? (i.path ? `${i.source} (${i.path})` : i.source) : i.path;
  return where ? `${where}: ${i.message}` : i.message;
}

function messageWithIssues(summary: string, issues: readonly Issue[]): string {
  if (issues.length === 0) return summary;
  const lines = formatIssues(issues)
    .split('\n')
    .map((l) => `  - ${l}`);
  return `${summary}\n${lines.join('\n')}`;
}

/** The configuration (file, environment, flags) is wrong. Lists every problem at once. */
export class ConfigError extends SchedError {
  readonly issues: readonly Issue[];

  constructor(summary: string, issues: readonly Issue[] = [], opts: { cause?: unknown } = {}) {
    super('CONFIG_INVALID', messageWithIssues(summary, issues), { retriable: false, cause: opts.cause });
    this.issues = issues;
  }
}

/** A workflow/schedule definition is wrong. Lists every problem at once with the path of the bad field. */
export class DefinitionError extends SchedError {
  readonly issues: readonly Issue[];

  constructor(summary: string, issues: readonly Issue[] = [], opts: { cause?: unknown } = {}) {
    super('DEFINITION_INVALID', messageWithIssues(summary, issues), { retriable: false, cause: opts.cause });
    this.issues = issues;
  }
}

/** The ZooKeeper session is gone (expired or declared lost); everything tied to it (ephemerals, locks, leadership) is void. */
export class SessionLostError extends SchedError {
  constructor(message = 'ZooKeeper session lost', opts: { cause?: unknown } = {}) {
    super('SESSION_LOST', message, { retriable: true, cause: opts.cause });
  }
}

/** A write was refused because the writer no longer holds the fence (an older incarnation, a stale epoch or version). */
export class FencedWriteError extends SchedError {
  constructor(message: string, opts: { cause?: unknown } = {}) {
    super('FENCED', message, { retriable: false, cause: opts.cause });
  }
}

/** An operation did not finish within its time limit. */
export class TimeoutError extends SchedError {
  constructor(message: string, opts: { cause?: unknown } = {}) {
    super('TIMEOUT', message, { retriable: true, cause: opts.cause });
  }
}

/** The thing asked for does not exist (a run id, a workflow name, a znode). */
export class NotFoundError extends SchedError {
  constructor(message: string, opts: { cause?: unknown } = {}) {
    super('NOT_FOUND', message, { retriable: false, cause: opts.cause });
  }
}

/** The command line was used wrongly (unknown option, missing argument). */
export class UsageError extends SchedError {
  constructor(message: string, opts: { cause?: unknown } = {}) {
    super('USAGE', message, { retriable: false, cause: opts.cause });
  }
}
