import { SchedError } from '@sched/core';

/**
 * Errors of the registry. Callers branch on `code` (and, for server answers, `zkCode`),
 * never on messages.
 */

/** The ZooKeeper error names sched handles, by the numeric code the server sends. */
export const ZK_ERROR_NAMES: Readonly<Record<number, string>> = {
  [-4]: 'CONNECTION_LOSS',
  [-5]: 'MARSHALLING_ERROR',
  [-6]: 'UNIMPLEMENTED',
  [-7]: 'OPERATION_TIMEOUT',
  [-8]: 'BAD_ARGUMENTS',
  [-101]: 'NO_NODE',
  [-102]: 'NO_AUTH',
  [-103]: 'BAD_VERSION',
  [-108]: 'NO_CHILDREN_FOR_EPHEMERALS',
  [-110]: 'NODE_EXISTS',
  [-111]: 'NOT_EMPTY',
  [-112]: 'SESSION_EXPIRED',
  [-113]: 'INVALID_CALLBACK',
  [-114]: 'INVALID_ACL',
  [-115]: 'AUTH_FAILED',
};

/** Codes that mean the server did not (or may not have) processed the request. */
const TRANSPORT_CODES = new Set(['CONNECTION_LOSS', 'OPERATION_TIMEOUT', 'SESSION_EXPIRED']);

/**
 * The server (or the client library) answered a request with a ZooKeeper error.
 * `code` is `ZK_<name>` (e.g. `ZK_NO_NODE`), `zkCode` the bare name (`NO_NODE`).
 * `retriable` is true for connection-level failures, where the request may or may not
 * have been applied (see `protectedCreate` for why that matters).
 */
export class ZkError extends SchedError {
  readonly zkCode: string;
  readonly path: string | undefined;

  constructor(zkCode: string, message: string, opts: { path?: string; cause?: unknown } = {}) {
    super(`ZK_${zkCode}`, message, { retriable: TRANSPORT_CODES.has(zkCode), cause: opts.cause });
    this.zkCode = zkCode;
    this.path = opts.path;
  }
}

/** Whether `err` is a ZooKeeper error with the given name (`NO_NODE`, `NODE_EXISTS`, …). */
export function isZkError(err: unknown, zkCode: string): err is ZkError {
  return err instanceof ZkError && err.zkCode === zkCode;
}

/** Translates an error from node-zookeeper-client (an `Exception` with a numeric `code`). */
export function fromClientError(err: unknown, op: string, path: string | undefined): ZkError {
  const numeric =
    typeof (err as { code?: unknown })?.code === 'number' ? (err as { code: number }).code : NaN;
  const name = ZK_ERROR_NAMES[numeric] ?? (Number.isNaN(numeric) ? 'CLIENT_ERROR' : `ERROR_${numeric}`);
  const where = path === undefined ? '' : ` ${path}`;
  return new ZkError(name, `ZooKeeper ${op}${where} failed: ${name}`, { path, cause: err });
}

/**
 * The connection to ZooKeeper is suspended (no reply for 2/3 of the session timeout, or the
 * socket dropped): the session may still be alive, but nothing new should be started on the
 * belief that it is. Retriable: the connection may come back (RECONNECTED).
 */
export class SessionSuspendedError extends SchedError {
  constructor(message = 'ZooKeeper connection suspended', opts: { cause?: unknown } = {}) {
    super('SESSION_SUSPENDED', message, { retriable: true, cause: opts.cause });
  }
}

/** The session was closed by its owner; no further requests are possible. */
export class SessionClosedError extends SchedError {
  constructor(message = 'ZooKeeper session closed') {
    super('SESSION_CLOSED', message, { retriable: false });
  }
}

/** Data read from a znode does not match what sched expects there. */
export class ZnodeDataError extends SchedError {
  readonly path: string;

  constructor(path: string, message: string, opts: { cause?: unknown } = {}) {
    super('ZNODE_DATA_INVALID', `${path}: ${message}`, { retriable: false, cause: opts.cause });
    this.path = path;
  }
}

/** Leadership (or a lock) ended: the session was suspended or lost, the candidate node vanished, or it was closed. */
export class LeadershipLostError extends SchedError {
  readonly reason: string;

  constructor(reason: string, message = `leadership lost (${reason})`) {
    super('LEADERSHIP_LOST', message, { retriable: true });
    this.reason = reason;
  }
}

/** A lock held by this process was lost with its session (or released). */
export class LockLostError extends SchedError {
  readonly reason: string;

  constructor(name: string, reason: string) {
    super('LOCK_LOST', `lock ${name} lost (${reason})`, { retriable: true });
    this.reason = reason;
  }
}
