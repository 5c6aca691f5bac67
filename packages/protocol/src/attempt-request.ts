import type { Issue } from '@sched/core';
import { InvalidRequestError } from './errors.js';

/**
 * What the master sends to run one task attempt (the body of a dispatch), and its validation,
 * which names every problem by its field path, what was wrong and what is accepted (the worker
 * refuses a malformed dispatch whole; nothing runs).
 */
export type TaskSpec = ShellTask | ScriptTask | HttpTask | NoopTask;

export interface ShellTask {
  type: 'shell';
  /** Run as `/bin/sh -c <command>`. */
  command: string;
}

export interface ScriptTask {
  type: 'script';
  /** Program that runs the script, e.g. `python3`, `node`, `/bin/bash`; looked up on PATH. */
  interpreter: string;
  /** Options before the script path, e.g. `['-u']`. */
  interpreterArgs: string[];
  /** The script's source, written to a file in the attempt's work directory. */
  source: string;
  /** Arguments after the script path. */
  args: string[];
}

export interface HttpTask {
  type: 'http';
  url: string;
  method: string;
  headers: Record<string, string>;
  body: string | null;
  /** Status codes that count as success; empty means any 2xx. */
  expectedStatus: number[];
  /** Request timeout; the attempt timeout applies as well. null = only the attempt timeout. */
  requestTimeoutMs: number | null;
}

export interface NoopTask {
  type: 'noop';
}

export interface AttemptRequest {
  /** Unique id of this attempt; dispatch is idempotent on it. */
  attemptId: string;
  runId: string;
  taskName: string;
  /** 1-based attempt number. */
  attempt: number;
  /** ISO 8601 scheduled fire time, null for a manual run. */
  fireTime: string | null;
  shardIndex: number;
  shardTotal: number;
  idempotencyKey: string;
  /** Task parameters, passed to the task as environment variables. */
  params: Record<string, string>;
  /** Kill the task after this long; null = no timeout. */
  timeoutMs: number | null;
  /** Incarnation key of the worker the master chose; a worker refuses a dispatch meant for another incarnation. */
  worker: string | null;
  /**
   * The registration of that worker the master saw: the czxid of its znode, as a decimal string.
   * A worker that lost its ZooKeeper session and registered again keeps its key but has a new
   * registration, and refuses a dispatch addressed to another one (the leader fails the old one's
   * attempts over). null (or left out) = not checked.
   */
  registration: string | null;
  /**
   * Which assignment of the attempt this dispatch carries: the master's counter grows every time
   * it gives the attempt to a worker anew. A revoke (`TaskExecutor.revoke`) refuses the copies of
   * a dispatch up to the seq it names, so a later assignment to the same worker still starts.
   * 0..2^31-1; 0 when the master does not send it.
   */
  dispatchSeq: number;
  task: TaskSpec;
}

/** Largest `dispatchSeq` (a PostgreSQL `integer`). */
export const DISPATCH_SEQ_MAX = 2 ** 31 - 1;

/** One attempt a master asks a worker to revoke (`POST /v1/attempts/revoke`). */
export interface RevokeItem {
  attemptId: string;
  /** The assignment whose delivery was in doubt: copies of it, and of earlier ones, never start. */
  dispatchSeq: number;
}

export interface RevokeRequest {
  /** Incarnation key the master believes it talks to; null = not checked. */
  worker: string | null;
  attempts: RevokeItem[];
}

export const ID_PATTERN = /^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$/;
/** A registration czxid: a non-negative 64-bit ZooKeeper zxid, in decimal. */
const REGISTRATION = /^\d{1,19}$/;
const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]{0,127}$/;
const HTTP_METHODS = ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS'];
const MAX_TEXT = 1024 * 1024;

const ID_RULE = {
  pattern: ID_PATTERN,
  accepted: 'letters, digits, _ . : - (at most 128, starting with a letter or digit)',
};

class Checker {
  readonly issues: Issue[] = [];

  problem(path: string, message: string): undefined {
    this.issues.push({ path, message });
    return undefined;
  }

  object(value: unknown, path: string): Record<string, unknown> | undefined {
    if (typeof value !== 'object' || value === null || Array.isArray(value)) {
      return this.problem(path, `expected an object, got ${describe(value)}`);
    }
    return value as Record<string, unknown>;
  }

  string(value: unknown, path: string, opts: { pattern?: RegExp; accepted?: string; max?: number } = {}) {
    if (typeof value !== 'string') return this.problem(path, `expected a string, got ${describe(value)}`);
    if (value.length === 0) return this.problem(path, 'must not be empty');
    if (value.length > (opts.max ?? MAX_TEXT))
      return this.problem(path, `longer than ${opts.max ?? MAX_TEXT} characters`);
    if (opts.pattern && !opts.pattern.test(value)) {
      return this.problem(
        path,
        `${JSON.stringify(value.slice(0, 80))} is not accepted; expected ${opts.accepted}`,
      );
    }
    return value;
  }

  int(value: unknown, path: string, min: number, max = Number.MAX_SAFE_INTEGER): number | undefined {
    if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
      return this.problem(path, `expected an integer in ${min}..${max}, got ${describe(value)}`);
    }
    return value;
  }

  stringArray(value: unknown, path: string): string[] | undefined {
    if (value === undefined) return [];
    if (!Array.isArray(value))
      return this.problem(path, `expected an array of strings, got ${describe(value)}`);
    const out: string[] = [];
    value.forEach((v, i) => {
      if (typeof v !== 'string') this.problem(`${path}[${i}]`, `expected a string, got ${describe(v)}`);
      else out.push(v);
    });
    return out;
  }

  stringMap(
    value: unknown,
    path: string,
    keyPattern?: RegExp,
    accepted?: string,
  ): Record<string, string> | undefined {
    if (value === undefined) return {};
    const obj = this.object(value, path);
    if (!obj) return undefined;
    const out: Record<string, string> = {};
    for (const [k, v] of Object.entries(obj)) {
      if (keyPattern && !keyPattern.test(k))
        this.problem(`${path}.${k}`, `name is not accepted; expected ${accepted}`);
      else if (typeof v !== 'string') this.problem(`${path}.${k}`, `expected a string, got ${describe(v)}`);
      else out[k] = v;
    }
    return out;
  }
}

function describe(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  if (typeof value === 'string') return `the string ${JSON.stringify(value.slice(0, 40))}`;
  if (typeof value === 'number') return String(value);
  return typeof value;
}

/**
 * Validates a dispatch body into an `AttemptRequest`.
 * @throws InvalidRequestError listing every bad field.
 */
export function parseAttemptRequest(input: unknown, path = ''): AttemptRequest {
  const c = new Checker();
  const at = (field: string) => (path ? `${path}.${field}` : field);
  const body = c.object(input, path || '(body)');
  if (!body) throw new InvalidRequestError(c.issues);

  const attemptId = c.string(body.attemptId, at('attemptId'), ID_RULE);
  const runId = c.string(body.runId, at('runId'), ID_RULE);
  const taskName = c.string(body.taskName, at('taskName'), { max: 256 });
  const attempt = c.int(body.attempt, at('attempt'), 1, 1_000_000);
  let fireTime: string | null = null;
  if (body.fireTime !== undefined && body.fireTime !== null) {
    const ft = c.string(body.fireTime, at('fireTime'), { max: 64 });
    if (ft !== undefined && Number.isNaN(Date.parse(ft)))
      c.problem(at('fireTime'), 'expected an ISO 8601 time or null');
    else if (ft !== undefined) fireTime = ft;
  }
  const shardTotal = body.shardTotal === undefined ? 1 : c.int(body.shardTotal, at('shardTotal'), 1, 100_000);
  const shardIndex = body.shardIndex === undefined ? 0 : c.int(body.shardIndex, at('shardIndex'), 0, 100_000);
  if (shardIndex !== undefined && shardTotal !== undefined && shardIndex >= shardTotal) {
    c.problem(at('shardIndex'), `must be below shardTotal (${shardTotal}), got ${shardIndex}`);
  }
  const idempotencyKey =
    body.idempotencyKey === undefined
      ? attemptId
      : c.string(body.idempotencyKey, at('idempotencyKey'), { max: 512 });
  const params = c.stringMap(
    body.params,
    at('params'),
    ENV_NAME,
    'an environment variable name [A-Za-z_][A-Za-z0-9_]*',
  );
  for (const name of Object.keys(params ?? {})) {
    if (name.startsWith('SCHED_'))
      c.problem(`${at('params')}.${name}`, 'SCHED_* names are reserved for sched');
  }
  const timeoutMs =
    body.timeoutMs === undefined || body.timeoutMs === null
      ? null
      : c.int(body.timeoutMs, at('timeoutMs'), 1);
  let worker: string | null = null;
  if (body.worker !== undefined && body.worker !== null)
    worker = c.string(body.worker, at('worker'), { max: 300 }) ?? null;
  let registration: string | null = null;
  if (body.registration !== undefined && body.registration !== null) {
    const r = c.string(body.registration, at('registration'), {
      pattern: REGISTRATION,
      accepted: 'the czxid of the worker’s registration znode in decimal (1 to 19 digits), or null',
    });
    // Canonical (no leading zeros), so it compares as a string with the worker's own.
    if (r !== undefined) registration = BigInt(r).toString();
  }
  const dispatchSeq =
    body.dispatchSeq === undefined ? 0 : c.int(body.dispatchSeq, at('dispatchSeq'), 0, DISPATCH_SEQ_MAX);
  const task = parseTaskSpec(c, body.task, at('task'));

  if (c.issues.length > 0) throw new InvalidRequestError(c.issues);
  return {
    attemptId: attemptId as string,
    runId: runId as string,
    taskName: taskName as string,
    attempt: attempt as number,
    fireTime,
    shardIndex: shardIndex as number,
    shardTotal: shardTotal as number,
    idempotencyKey: idempotencyKey as string,
    params: params as Record<string, string>,
    timeoutMs: timeoutMs ?? null,
    worker,
    registration,
    dispatchSeq: dispatchSeq as number,
    task: task as TaskSpec,
  };
}

/**
 * Validates a revoke body `{ "worker": key | null, "attempts": [{ "attemptId", "dispatchSeq" }, …] }`
 * (1..`maxItems` attempts; `worker` may be left out, meaning null).
 * @throws InvalidRequestError listing every bad field; nothing is revoked then.
 */
export function parseRevokeRequest(input: unknown, maxItems: number): RevokeRequest {
  const c = new Checker();
  const body = c.object(input, '(body)');
  if (!body) throw new InvalidRequestError(c.issues);
  let worker: string | null = null;
  if (body.worker !== undefined && body.worker !== null)
    worker = c.string(body.worker, 'worker', { max: 300 }) ?? null;
  const attempts: RevokeItem[] = [];
  if (!Array.isArray(body.attempts)) {
    c.problem(
      'attempts',
      `expected an array of { "attemptId", "dispatchSeq" }, got ${describe(body.attempts)}`,
    );
  } else if (body.attempts.length === 0 || body.attempts.length > maxItems) {
    c.problem('attempts', `expected 1..${maxItems} attempts, got ${body.attempts.length}`);
  } else {
    body.attempts.forEach((item: unknown, i: number) => {
      const path = `attempts[${i}]`;
      const o = c.object(item, path);
      if (!o) return;
      const attemptId = c.string(o.attemptId, `${path}.attemptId`, ID_RULE);
      const dispatchSeq = c.int(o.dispatchSeq, `${path}.dispatchSeq`, 0, DISPATCH_SEQ_MAX);
      if (attemptId !== undefined && dispatchSeq !== undefined) attempts.push({ attemptId, dispatchSeq });
    });
  }
  if (c.issues.length > 0) throw new InvalidRequestError(c.issues);
  return { worker, attempts };
}

function parseTaskSpec(c: Checker, input: unknown, path: string): TaskSpec | undefined {
  const t = c.object(input, path);
  if (!t) return undefined;
  switch (t.type) {
    case 'noop':
      return { type: 'noop' };
    case 'shell': {
      const command = c.string(t.command, `${path}.command`);
      return command === undefined ? undefined : { type: 'shell', command };
    }
    case 'script': {
      const interpreter = c.string(t.interpreter, `${path}.interpreter`, { max: 4096 });
      const source = typeof t.source === 'string' && t.source.length <= MAX_TEXT ? t.source : undefined;
      if (source === undefined)
        c.problem(`${path}.source`, `expected a string of at most ${MAX_TEXT} characters`);
      const interpreterArgs = c.stringArray(t.interpreterArgs, `${path}.interpreterArgs`);
      const args = c.stringArray(t.args, `${path}.args`);
      if (interpreter === undefined || source === undefined || !interpreterArgs || !args) return undefined;
      return { type: 'script', interpreter, interpreterArgs, source, args };
    }
    case 'http': {
      const url = c.string(t.url, `${path}.url`, { max: 8192 });
      if (url !== undefined) {
        let parsed: URL | undefined;
        try {
          parsed = new URL(url);
        } catch {
          c.problem(`${path}.url`, `${JSON.stringify(url.slice(0, 80))} is not a URL`);
        }
        if (parsed && parsed.protocol !== 'http:' && parsed.protocol !== 'https:') {
          c.problem(`${path}.url`, `protocol ${parsed.protocol} is not accepted; expected http: or https:`);
        }
      }
      const method = t.method === undefined ? 'GET' : String(t.method).toUpperCase();
      if (!HTTP_METHODS.includes(method)) {
        c.problem(
          `${path}.method`,
          `${JSON.stringify(t.method)} is not accepted; expected one of ${HTTP_METHODS.join(', ')}`,
        );
      }
      const headers = c.stringMap(t.headers, `${path}.headers`);
      let body: string | null = null;
      if (t.body !== undefined && t.body !== null) {
        if (typeof t.body === 'string') body = t.body;
        else c.problem(`${path}.body`, `expected a string or null, got ${describe(t.body)}`);
      }
      let expectedStatus: number[] = [];
      if (t.expectedStatus !== undefined) {
        const list = Array.isArray(t.expectedStatus) ? t.expectedStatus : [t.expectedStatus];
        expectedStatus = list.filter(
          (s, i) => c.int(s, `${path}.expectedStatus[${i}]`, 100, 599) !== undefined,
        );
      }
      const requestTimeoutMs =
        t.timeoutMs === undefined || t.timeoutMs === null
          ? null
          : (c.int(t.timeoutMs, `${path}.timeoutMs`, 1) ?? null);
      if (url === undefined || !headers) return undefined;
      return { type: 'http', url, method, headers, body, expectedStatus, requestTimeoutMs };
    }
    default:
      return c.problem(
        `${path}.type`,
        `${JSON.stringify(t.type)} is not a task type; accepted: shell, script, http, noop`,
      );
  }
}
