import type { Issue } from '@sched/core';
import { z } from 'zod';
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

/** How a wrong value is named in a message. */
function describe(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  if (typeof value === 'string') return `the string ${JSON.stringify(value.slice(0, 40))}`;
  if (typeof value === 'number') return String(value);
  return typeof value;
}

// ---- zod building blocks: every message says what was wrong and what is accepted -------------

/** A non-empty string of at most `max` characters, optionally matching `rule`. */
function text(max = MAX_TEXT, rule?: { pattern: RegExp; accepted: string }) {
  const base = z
    .string({ error: (iss) => `expected a string, got ${describe(iss.input)}` })
    .min(1, { error: 'must not be empty', abort: true })
    .max(max, { error: `longer than ${max} characters`, abort: true });
  if (!rule) return base;
  return base.regex(rule.pattern, {
    error: (iss) =>
      `${JSON.stringify(String(iss.input).slice(0, 80))} is not accepted; expected ${rule.accepted}`,
    abort: true,
  });
}

/** An integer in `min..max`. */
function integer(min: number, max = Number.MAX_SAFE_INTEGER) {
  const error = (iss: { input?: unknown }) =>
    `expected an integer in ${min}..${max}, got ${describe(iss.input)}`;
  return z
    .number({ error })
    .int({ error, abort: true })
    .min(min, { error, abort: true })
    .max(max, { error, abort: true });
}

/** An object of string values whose names match `names` (when given). */
function stringMap(names?: { pattern: RegExp; accepted: string }) {
  return z.record(
    names ? z.string().regex(names.pattern) : z.string(),
    z.string({ error: (iss) => `expected a string, got ${describe(iss.input)}` }),
    {
      error: (iss) =>
        iss.code === 'invalid_key'
          ? `name is not accepted; expected ${names?.accepted ?? 'a string'}`
          : `expected an object, got ${describe(iss.input)}`,
    },
  );
}

function object<T extends z.core.$ZodLooseShape>(shape: T) {
  return z.object(shape, { error: (iss) => `expected an object, got ${describe(iss.input)}` });
}

const stringList = z.array(z.string({ error: (iss) => `expected a string, got ${describe(iss.input)}` }), {
  error: (iss) => `expected an array of strings, got ${describe(iss.input)}`,
});

const isoTime = text(64).refine((v) => !Number.isNaN(Date.parse(v)), {
  error: 'expected an ISO 8601 time or null',
});

/**
 * The fields of a dispatch, each a zod schema, in the order they are checked (and their problems
 * listed). `parseAttemptRequest` adds what crosses fields: defaults, `shardIndex < shardTotal`,
 * reserved parameter names, the task by its type.
 */
export const attemptRequestFields = {
  attemptId: text(MAX_TEXT, ID_RULE),
  runId: text(MAX_TEXT, ID_RULE),
  taskName: text(256),
  attempt: integer(1, 1_000_000),
  fireTime: isoTime.nullable().optional(),
  shardTotal: integer(1, 100_000).optional(),
  shardIndex: integer(0, 100_000).optional(),
  idempotencyKey: text(512).optional(),
  params: stringMap({
    pattern: ENV_NAME,
    accepted: 'an environment variable name [A-Za-z_][A-Za-z0-9_]*',
  }).optional(),
  timeoutMs: integer(1).nullable().optional(),
  worker: text(300).nullable().optional(),
  registration: text(MAX_TEXT, {
    pattern: REGISTRATION,
    accepted: 'the czxid of the worker’s registration znode in decimal (1 to 19 digits), or null',
  })
    .nullable()
    .optional(),
  dispatchSeq: integer(0, DISPATCH_SEQ_MAX).optional(),
};

/** The task of a dispatch, by its `type`. */
export const taskSpecSchemas = {
  noop: object({}),
  shell: object({ command: text() }),
  script: object({
    interpreter: text(4096),
    source: z.string({ error: `expected a string of at most ${MAX_TEXT} characters` }).max(MAX_TEXT, {
      error: `expected a string of at most ${MAX_TEXT} characters`,
    }),
    interpreterArgs: stringList.optional(),
    args: stringList.optional(),
  }),
  http: object({
    url: text(8192)
      .refine((u) => URL.canParse(u), {
        error: (iss) => `${JSON.stringify(String(iss.input).slice(0, 80))} is not a URL`,
        abort: true,
      })
      .refine((u) => ['http:', 'https:'].includes(new URL(u).protocol), {
        error: (iss) =>
          `protocol ${new URL(String(iss.input)).protocol} is not accepted; expected http: or https:`,
      }),
    method: z
      .unknown()
      .refine((m) => m === undefined || HTTP_METHODS.includes(String(m).toUpperCase()), {
        error: (iss) =>
          `${JSON.stringify(iss.input)} is not accepted; expected one of ${HTTP_METHODS.join(', ')}`,
      })
      .transform((m) => (m === undefined ? 'GET' : String(m).toUpperCase())),
    headers: stringMap().optional(),
    body: z
      .string({ error: (iss) => `expected a string or null, got ${describe(iss.input)}` })
      .nullable()
      .optional(),
    // One status or a list; empty means any 2xx.
    expectedStatus: z.preprocess(
      (v) => (v === undefined ? [] : Array.isArray(v) ? v : [v]),
      z.array(integer(100, 599)),
    ),
    timeoutMs: integer(1).nullable().optional(),
  }),
} as const;

/** One schema's problems, with paths under `base` (`a.b[2].c`). */
function check<S extends z.ZodType>(
  issues: Issue[],
  schema: S,
  value: unknown,
  base: string,
): z.output<S> | undefined {
  const r = schema.safeParse(value);
  if (r.success) return r.data;
  for (const iss of r.error.issues) issues.push({ path: joinPath(base, iss.path), message: iss.message });
  return undefined;
}

function joinPath(base: string, rest: readonly PropertyKey[]): string {
  let out = base;
  for (const p of rest)
    out = typeof p === 'number' ? `${out}[${p}]` : out ? `${out}.${String(p)}` : String(p);
  return out;
}

/**
 * Validates a dispatch body into an `AttemptRequest` (`path` prefixes every issue, e.g.
 * `attempts[3]` inside a batch).
 * @throws InvalidRequestError listing every bad field, in field order.
 */
export function parseAttemptRequest(input: unknown, path = ''): AttemptRequest {
  // The common case, a valid dispatch, in one pass of the composed schema; anything it refuses
  // goes through the field-by-field pass below, which names every problem in field order.
  const fast = attemptRequestSchema.safeParse(input);
  if (fast.success) {
    const r = fast.data;
    const shardTotal = r.shardTotal ?? 1;
    const shardIndex = r.shardIndex ?? 0;
    const params = r.params ?? {};
    if (shardIndex < shardTotal && !Object.keys(params).some((n) => n.startsWith('SCHED_'))) {
      return {
        attemptId: r.attemptId,
        runId: r.runId,
        taskName: r.taskName,
        attempt: r.attempt,
        fireTime: r.fireTime ?? null,
        shardIndex,
        shardTotal,
        idempotencyKey: r.idempotencyKey ?? r.attemptId,
        params,
        timeoutMs: r.timeoutMs ?? null,
        worker: r.worker ?? null,
        registration:
          r.registration === undefined || r.registration === null ? null : BigInt(r.registration).toString(),
        dispatchSeq: r.dispatchSeq ?? 0,
        task: taskSpecOf(r.task),
      };
    }
  }
  return parseAttemptRequestSlowly(input, path);
}

function parseAttemptRequestSlowly(input: unknown, path: string): AttemptRequest {
  const issues: Issue[] = [];
  const at = (field: string) => (path ? `${path}.${field}` : field);
  const body = check(
    issues,
    z.record(z.string(), z.unknown(), { error: objectError }),
    input,
    path || '(body)',
  );
  if (!body || Array.isArray(input)) {
    if (issues.length === 0)
      issues.push({ path: path || '(body)', message: `expected an object, got ${describe(input)}` });
    throw new InvalidRequestError(issues);
  }
  const f = attemptRequestFields;
  const attemptId = check(issues, f.attemptId, body.attemptId, at('attemptId'));
  const runId = check(issues, f.runId, body.runId, at('runId'));
  const taskName = check(issues, f.taskName, body.taskName, at('taskName'));
  const attempt = check(issues, f.attempt, body.attempt, at('attempt'));
  const fireTime = check(issues, f.fireTime, body.fireTime, at('fireTime'));
  const shardTotalIn = check(issues, f.shardTotal, body.shardTotal, at('shardTotal'));
  const shardIndexIn = check(issues, f.shardIndex, body.shardIndex, at('shardIndex'));
  const shardTotal = body.shardTotal === undefined ? 1 : shardTotalIn;
  const shardIndex = body.shardIndex === undefined ? 0 : shardIndexIn;
  if (shardIndex !== undefined && shardTotal !== undefined && shardIndex >= shardTotal) {
    issues.push({
      path: at('shardIndex'),
      message: `must be below shardTotal (${shardTotal}), got ${shardIndex}`,
    });
  }
  const idempotencyKey =
    body.idempotencyKey === undefined
      ? attemptId
      : check(issues, f.idempotencyKey, body.idempotencyKey, at('idempotencyKey'));
  const params =
    check(issues, f.params, body.params, at('params')) ?? (body.params === undefined ? {} : undefined);
  if (body.params !== null && typeof body.params === 'object') {
    for (const [name, value] of Object.entries(body.params as Record<string, unknown>)) {
      if (name.startsWith('SCHED_') && ENV_NAME.test(name) && typeof value === 'string') {
        issues.push({ path: `${at('params')}.${name}`, message: 'SCHED_* names are reserved for sched' });
      }
    }
  }
  const timeoutMs = check(issues, f.timeoutMs, body.timeoutMs, at('timeoutMs'));
  const worker = check(issues, f.worker, body.worker, at('worker'));
  const registration = check(issues, f.registration, body.registration, at('registration'));
  const dispatchSeq = check(issues, f.dispatchSeq, body.dispatchSeq, at('dispatchSeq'));
  const task = parseTaskSpec(issues, body.task, at('task'));

  if (issues.length > 0) throw new InvalidRequestError(issues);
  return {
    attemptId: attemptId as string,
    runId: runId as string,
    taskName: taskName as string,
    attempt: attempt as number,
    fireTime: fireTime ?? null,
    shardIndex: shardIndex as number,
    shardTotal: shardTotal as number,
    idempotencyKey: idempotencyKey as string,
    params: params as Record<string, string>,
    timeoutMs: timeoutMs ?? null,
    worker: worker ?? null,
    // Canonical (no leading zeros), so it compares as a string with the worker's own.
    registration:
      registration === undefined || registration === null ? null : BigInt(registration).toString(),
    dispatchSeq: dispatchSeq ?? 0,
    task: task as TaskSpec,
  };
}

const objectError = (iss: { input?: unknown }) => `expected an object, got ${describe(iss.input)}`;

/** The whole dispatch as one schema (the fast path of `parseAttemptRequest`). */
export const attemptRequestSchema = z.object({
  ...attemptRequestFields,
  task: z.discriminatedUnion('type', [
    taskSpecSchemas.noop.extend({ type: z.literal('noop') }),
    taskSpecSchemas.shell.extend({ type: z.literal('shell') }),
    taskSpecSchemas.script.extend({ type: z.literal('script') }),
    taskSpecSchemas.http.extend({ type: z.literal('http') }),
  ]),
});

type ParsedTask = z.output<typeof attemptRequestSchema>['task'];

function taskSpecOf(t: ParsedTask): TaskSpec {
  switch (t.type) {
    case 'noop':
      return { type: 'noop' };
    case 'shell':
      return { type: 'shell', command: t.command };
    case 'script':
      return {
        type: 'script',
        interpreter: t.interpreter,
        interpreterArgs: t.interpreterArgs ?? [],
        source: t.source,
        args: t.args ?? [],
      };
    case 'http':
      return {
        type: 'http',
        url: t.url,
        method: t.method,
        headers: t.headers ?? {},
        body: t.body ?? null,
        expectedStatus: t.expectedStatus,
        requestTimeoutMs: t.timeoutMs ?? null,
      };
  }
}

/** The body of `POST /v1/attempts/revoke`. */
export const revokeRequestSchema = (maxItems: number) =>
  z.object(
    {
      worker: text(300).nullable().optional(),
      attempts: z
        .array(z.unknown(), {
          error: (iss) => `expected an array of { "attemptId", "dispatchSeq" }, got ${describe(iss.input)}`,
        })
        .min(1, {
          error: (iss) => `expected 1..${maxItems} attempts, got ${(iss.input as unknown[]).length}`,
          abort: true,
        })
        .max(maxItems, {
          error: (iss) => `expected 1..${maxItems} attempts, got ${(iss.input as unknown[]).length}`,
          abort: true,
        })
        .pipe(
          z.array(object({ attemptId: text(MAX_TEXT, ID_RULE), dispatchSeq: integer(0, DISPATCH_SEQ_MAX) })),
        ),
    },
    { error: objectError },
  );

/**
 * Validates a revoke body `{ "worker": key | null, "attempts": [{ "attemptId", "dispatchSeq" }, …] }`
 * (1..`maxItems` attempts; `worker` may be left out, meaning null).
 * @throws InvalidRequestError listing every bad field; nothing is revoked then.
 */
export function parseRevokeRequest(input: unknown, maxItems: number): RevokeRequest {
  const issues: Issue[] = [];
  const body = check(issues, revokeRequestSchema(maxItems), input, '');
  if (!body) {
    throw new InvalidRequestError(issues.map((i) => (i.path === '' ? { ...i, path: '(body)' } : i)));
  }
  return { worker: body.worker ?? null, attempts: body.attempts };
}

function parseTaskSpec(issues: Issue[], input: unknown, path: string): TaskSpec | undefined {
  const t = check(issues, z.record(z.string(), z.unknown(), { error: objectError }), input, path);
  if (!t || Array.isArray(input)) {
    if (t) issues.push({ path, message: `expected an object, got ${describe(input)}` });
    return undefined;
  }
  const type = t.type;
  if (type !== 'noop' && type !== 'shell' && type !== 'script' && type !== 'http') {
    issues.push({
      path: `${path}.type`,
      message: `${JSON.stringify(type)} is not a task type; accepted: shell, script, http, noop`,
    });
    return undefined;
  }
  if (type === 'noop') return { type: 'noop' };
  const parsed = check(issues, taskSpecSchemas[type], t, path);
  return parsed && taskSpecOf({ ...parsed, type } as ParsedTask);
}
