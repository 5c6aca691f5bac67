import { formatDuration, parseDuration } from '@sched/core';
import { z } from 'zod';
import { CRON_ACCEPTED, checkCron } from '../cron/cron-schedule.js';
import {
  BACKOFF_KINDS,
  CONCURRENCY_POLICIES,
  FAILOVER_POLICIES,
  type HttpSpec,
  MISFIRE_POLICIES,
  PARAM_NAME_PATTERN,
  paramNameProblem,
  RESERVED_PARAM_NAMES,
  RESERVED_PARAM_PREFIXES,
  type RetryDefinition,
  ROUTING_STRATEGIES,
  type ScheduleDefinition,
  TASK_TYPES,
  type TaskDefinition,
  type TaskType,
  type WorkflowDefinition,
} from './definition-types.js';

/**
 * The zod schema of a workflow definition file (docs/definitions.md): one source for validating
 * a parsed YAML/JSON document, compiling it to a `WorkflowDefinition` and generating the JSON
 * Schema editors use (definition-json-schema.ts).
 *
 * Every message says what is wrong and what is accepted. Schemas carry their own messages
 * (`{ error }`) so that a field reads `expected an integer from 0 to 100, got the string "three"`
 * rather than zod's defaults. The checks that need more than one field (cron against its time
 * zone, task-type fields, dependencies, cycles) are refinements that run even when other fields
 * are wrong (`when`), so a file gets every problem at once; they must therefore cope with values
 * that failed their own checks. Compiling (defaults, durations to ms, dates to epoch ms) is the
 * schemas' transforms, which only run on valid input.
 */

const WORKFLOW_NAME = /^[a-z0-9][a-z0-9-]{0,62}$/;
const TASK_NAME = /^[a-z0-9][a-z0-9_-]{0,62}$/;
const WORKER_GROUP = /^[A-Za-z0-9_.-]+$/;
const HTTP_METHODS = ['GET', 'POST', 'PUT', 'PATCH', 'DELETE', 'HEAD'] as const;
// Written with character classes rather than the `i` flag, so the JSON Schema pattern means the same.
const HTTP_METHOD = new RegExp(`^(?:${HTTP_METHODS.map((m) => caseless(m)).join('|')})$`);
const HTTP_URL_START = new RegExp(`^${caseless('http')}[Ss]?://`);
// A duration's shape (parseDuration has the last word: `1.0001s` has the shape but no whole ms).
const DURATION_TEXT = /^\s*(?:\d+|(?:\d+(?:\.\d+)?(?:ms|s|m|h|d))+)\s*$/;
const INSTANT =
  /^(\d{4})-(\d{2})-(\d{2})(?:[T ](\d{2}):(\d{2})(?::(\d{2})(?:\.(\d{1,3}))?)?)?(Z|[+-]\d{2}:?\d{2})?$/;

const WORKFLOW_NAME_TEXT =
  'lower-case letters, digits and "-", starting with a letter or digit, at most 63 characters';
const TASK_NAME_TEXT =
  'lower-case letters, digits, "-" and "_", starting with a letter or digit, at most 63 characters';
const TIMEZONE_TEXT = 'an IANA name like UTC, Europe/London, America/New_York';
const INSTANT_TEXT =
  "ISO 8601 like 2026-01-31, 2026-01-31T09:00:00 (in the schedule's timezone) or 2026-01-31T09:00:00Z";
const URL_TEXT = 'an absolute http:// or https:// URL';
const DURATION_EXAMPLE = 'a duration like 30s, 5m, 1h (or a number of milliseconds)';

function caseless(word: string): string {
  return [...word].map((c) => `[${c.toUpperCase()}${c.toLowerCase()}]`).join('');
}

/** How a received value is named in messages: `the string "x"`, `number 3`, `a list`, … */
export function describeValue(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'a list';
  if (value instanceof Date) return `the date ${value.toISOString()}`;
  if (typeof value === 'object') return 'an object';
  if (typeof value === 'string') return `the string ${JSON.stringify(value)}`;
  return `${typeof value} ${String(value)}`;
}

const oneOf = (values: readonly string[]): string => `one of ${values.join(', ')}`;

type RawIssue = { input?: unknown };
const isRecord = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v) && !(v instanceof Date);
/** Refinements across fields run whenever the value is an object, however its fields fared. */
const whenObject = { when: (payload: { value: unknown }) => isRecord(payload.value) };

/** The message of a value of the wrong type, or of a missing one, where `accepted` is what fits. */
function expected(accepted: string) {
  return (iss: RawIssue): string =>
    iss.input === undefined
      ? `is required; accepted: ${accepted}`
      : `expected ${accepted}, got ${describeValue(iss.input)}`;
}

function text(accepted = 'a string') {
  return z.string({ error: expected(accepted) });
}

function nonEmptyText(accepted: string) {
  return text(accepted).refine((s) => s.trim() !== '', { error: `must not be empty; accepted: ${accepted}` });
}

function named(pattern: RegExp, accepted: string) {
  return text(`a name of ${accepted}`).regex(pattern, {
    error: (iss: RawIssue) => `invalid value ${JSON.stringify(iss.input)}; accepted: ${accepted}`,
  });
}

function oneOfValues<const T extends readonly [string, ...string[]]>(values: T) {
  return z.enum(values, {
    error: (iss: RawIssue) =>
      iss.input === undefined
        ? `is required; accepted: ${oneOf(values)}`
        : `invalid value ${describeValue(iss.input)}; accepted: ${oneOf(values)}`,
  });
}

/**
 * Not `.int()`: its issue aborts the parse, which would also stop the cross-field refinements
 * (`when`) of every enclosing object. A failing value may break several checks with the same
 * message; the formatter keeps one.
 */
function integer(min: number, max: number) {
  const error = expected(`an integer from ${min} to ${max}`);
  return z
    .number({ error })
    .refine(Number.isInteger, { error })
    .min(min, { error })
    .max(max, { error })
    .meta({ type: 'integer' });
}

const bool = () => z.boolean({ error: expected('true or false') });

/** Names to strings; numbers and booleans are accepted and turned into strings. */
function stringMap(description: string) {
  return z
    .record(
      z.string(),
      z.union([z.string(), z.number(), z.boolean()], { error: expected('a string, number or boolean') }),
      { error: expected('an object of names to strings') },
    )
    .transform((m) => Object.fromEntries(Object.entries(m).map(([k, v]) => [k, String(v)])))
    .meta({ description });
}

/**
 * Parameters: a string map whose names are environment variable names and not reserved
 * (definition-types.ts, docs/definitions.md#parameters). The JSON Schema says the same to editors.
 */
function paramMap(description: string) {
  return stringMap(description)
    .superRefine((m, ctx) => {
      for (const name of Object.keys(m)) {
        const problem = paramNameProblem(name);
        if (problem !== null) ctx.addIssue({ code: 'custom', path: [name], input: name, message: problem });
      }
    })
    .meta({
      propertyNames: {
        pattern: PARAM_NAME_PATTERN.source,
        not: {
          anyOf: [
            { enum: [...RESERVED_PARAM_NAMES] },
            { pattern: `^(?:${RESERVED_PARAM_PREFIXES.join('|')})` },
          ],
        },
      },
    });
}

function durationMessage(input: unknown): string {
  if (typeof input === 'string' || typeof input === 'number') {
    try {
      parseDuration(input);
    } catch (err) {
      // parseDuration's message already says what is accepted.
      return err instanceof Error ? err.message : String(err);
    }
  }
  return `expected ${DURATION_EXAMPLE}, got ${describeValue(input)}`;
}

/** `30s`, `1h30m`, `500ms` or a number of milliseconds in; integer milliseconds out. */
function duration(description: string) {
  return z
    .union(
      [
        z.string().regex(DURATION_TEXT, { error: (iss: RawIssue) => durationMessage(iss.input) }),
        // Checked by parseDuration below, for its message; the JSON Schema says it here.
        z.number().meta({ type: 'integer', minimum: 0 }),
      ],
      { error: (iss: RawIssue) => durationMessage(iss.input) },
    )
    .transform((value, ctx) => {
      try {
        return parseDuration(value);
      } catch {
        ctx.addIssue({ code: 'custom', message: durationMessage(value), input: value });
        return z.NEVER;
      }
    })
    .meta({ description: `${description} Accepted: 500ms, 10s, 5m, 1h, 1h30m, 7d or a number of ms.` });
}

/** Wall-clock fields of an ISO 8601 date or date-time, checked for a real calendar date; null if invalid. */
function instantFields(value: string): { wallAsUtc: number; offset: string | undefined } | null {
  const m = INSTANT.exec(value);
  if (!m) return null;
  const [, y, mo, d, h = '0', mi = '0', s = '0', ms = '0', offset] = m;
  const fields = [
    Number(y),
    Number(mo) - 1,
    Number(d),
    Number(h),
    Number(mi),
    Number(s),
    Number(ms.padEnd(3, '0')),
  ] as const;
  const wallAsUtc = Date.UTC(...fields);
  const check = new Date(wallAsUtc);
  if (
    check.getUTCMonth() !== fields[1] ||
    check.getUTCDate() !== fields[2] ||
    fields[3] > 23 ||
    fields[4] > 59 ||
    fields[5] > 59
  ) {
    return null;
  }
  return { wallAsUtc, offset };
}

/** ISO 8601 instant with offset, or a local date / date-time read in `timezone`; null if invalid. */
function parseInstant(value: string, timezone: string): number | null {
  const f = instantFields(value);
  if (!f) return null;
  if (f.offset === undefined) return zonedWallTimeToEpoch(f.wallAsUtc, timezone);
  if (f.offset === 'Z') return f.wallAsUtc;
  const om = /^([+-])(\d{2}):?(\d{2})$/.exec(f.offset);
  const sign = om?.[1] === '-' ? -1 : 1;
  return f.wallAsUtc - sign * (Number(om?.[2]) * 60 + Number(om?.[3])) * 60_000;
}

/** The instant whose wall-clock time in `timezone` is the UTC fields of `wallAsUtc` (earliest if repeated). */
export function zonedWallTimeToEpoch(wallAsUtc: number, timezone: string): number {
  const offsetAt = (t: number) => {
    const f = new Intl.DateTimeFormat('en-US', {
      timeZone: timezone,
      hourCycle: 'h23',
      year: 'numeric',
      month: 'numeric',
      day: 'numeric',
      hour: 'numeric',
      minute: 'numeric',
      second: 'numeric',
    }).formatToParts(new Date(t));
    const get = (type: string) => Number(f.find((p) => p.type === type)?.value);
    return (
      Date.UTC(get('year'), get('month') - 1, get('day'), get('hour'), get('minute'), get('second')) -
      Math.floor(t / 1000) * 1000
    );
  };
  // Two passes settle the offset except inside a gap, where the later offset is used.
  let guess = wallAsUtc - offsetAt(wallAsUtc);
  guess = wallAsUtc - offsetAt(guess);
  const earlier = wallAsUtc - offsetAt(guess - 3_600_000);
  if (earlier < guess && earlier + offsetAt(earlier) === wallAsUtc) return earlier;
  return guess;
}

function isTimeZone(tz: string): boolean {
  try {
    new Intl.DateTimeFormat('en-US', { timeZone: tz });
    return true;
  } catch {
    return false;
  }
}

function isHttpUrl(url: string): boolean {
  try {
    const u = new URL(url);
    return u.protocol === 'http:' || u.protocol === 'https:';
  } catch {
    return false;
  }
}

/**
 * An object of exactly these fields. An unknown field is reported as
 * `unknown field "x"; accepted: one of …` (the formatter adds the field's name and path).
 */
function fields<S extends z.core.$ZodLooseShape>(what: string, shape: S) {
  const accepted = Object.keys(shape);
  return z.strictObject(shape, {
    error: (iss: RawIssue & { code?: string }) =>
      iss.code === 'unrecognized_keys'
        ? `accepted: ${oneOf(accepted)}`
        : expected(`${what} (fields: ${accepted.join(', ')})`)(iss),
  });
}

// ---------------------------------------------------------------------------------------------
// schedule

const instant = (description: string) =>
  z.preprocess(
    // YAML 1.1 timestamps may arrive already parsed.
    (v) => (v instanceof Date ? v.toISOString() : v),
    text(`an ISO 8601 date or date-time (${INSTANT_TEXT})`)
      .regex(INSTANT, { error: (iss: RawIssue) => badInstant(iss.input) })
      .refine((s) => instantFields(s) !== null, { error: (iss: RawIssue) => badInstant(iss.input) })
      .meta({ description }),
  );
const badInstant = (value: unknown) => `invalid date ${JSON.stringify(value)}; accepted: ${INSTANT_TEXT}`;

const timezoneSchema = nonEmptyText(`${TIMEZONE_TEXT}`)
  .refine(isTimeZone, {
    error: (iss: RawIssue) => `unknown time zone ${JSON.stringify(iss.input)}; accepted: ${TIMEZONE_TEXT}`,
  })
  .meta({ description: 'IANA time zone the cron expression and local start/end are read in.' });

const scheduleSchema = fields('a schedule', {
  cron: nonEmptyText(`a cron expression: ${CRON_ACCEPTED}`).meta({
    description: `Cron expression: ${CRON_ACCEPTED}. See docs/scheduling.md.`,
  }),
  timezone: timezoneSchema.default('UTC'),
  misfire: oneOfValues(MISFIRE_POLICIES).default('fire-once-now').meta({
    description: 'What to do with fires handled more than misfireThreshold late (docs/scheduling.md).',
  }),
  misfireThreshold: duration('A fire found later than this is a misfire.').prefault('5s'),
  maxCatchUp: integer(1, 10_000)
    .default(100)
    .meta({ description: 'fire-all catches up at most this many missed fires (the most recent).' }),
  concurrency: oneOfValues(CONCURRENCY_POLICIES)
    .default('allow')
    .meta({ description: 'What a fire does while the previous run is still going (docs/scheduling.md).' }),
  start: instant(
    'Inclusive lower bound: ISO 8601, local to timezone unless it has Z or an offset.',
  ).optional(),
  end: instant('Exclusive upper bound: ISO 8601, local to timezone unless it has Z or an offset.').optional(),
  paused: bool().default(false).meta({ description: 'A paused schedule does not fire.' }),
})
  .superRefine((value, ctx) => {
    const s = value as Record<string, unknown>;
    const timezone = typeof s.timezone === 'string' && isTimeZone(s.timezone) ? s.timezone : 'UTC';
    if (typeof s.cron === 'string' && s.cron.trim() !== '') {
      const why = checkCron(s.cron, timezone);
      if (why) {
        ctx.addIssue({
          code: 'custom',
          path: ['cron'],
          input: s.cron,
          message: `invalid cron expression ${JSON.stringify(s.cron)}: ${why}; accepted: ${CRON_ACCEPTED}`,
        });
      }
    }
    const start = typeof s.start === 'string' ? parseInstant(s.start, timezone) : null;
    const end = typeof s.end === 'string' ? parseInstant(s.end, timezone) : null;
    if (start !== null && end !== null && end <= start) {
      ctx.addIssue({
        code: 'custom',
        path: ['end'],
        input: s.end,
        message: `must be after start (${new Date(start).toISOString()})`,
      });
    }
  }, whenObject)
  .transform(
    (s): ScheduleDefinition => ({
      cron: s.cron,
      timezone: s.timezone,
      misfire: s.misfire,
      misfireThresholdMs: s.misfireThreshold,
      maxCatchUp: s.maxCatchUp,
      concurrency: s.concurrency,
      startAt: s.start === undefined ? null : (parseInstant(s.start, s.timezone) as number),
      endAt: s.end === undefined ? null : (parseInstant(s.end, s.timezone) as number),
      paused: s.paused,
    }),
  )
  .meta({ description: 'When the workflow fires. Without a schedule it only runs when triggered.' });

// ---------------------------------------------------------------------------------------------
// tasks

/** Retries when the field is left out: none. (An empty `retries: {}` gets the 1s delay default.) */
const NO_RETRIES: RetryDefinition = { max: 0, backoff: 'fixed', delayMs: 0, maxDelayMs: null };

const retriesSchema = fields('retries', {
  max: integer(0, 100).default(0).meta({ description: 'Retries after the first attempt.' }),
  backoff: oneOfValues(BACKOFF_KINDS).default('fixed'),
  delay: duration('Delay before the first retry (doubled per retry with exponential backoff).').prefault(
    '1s',
  ),
  maxDelay: duration('Upper bound of the delay with exponential backoff.').optional(),
})
  .superRefine((value, ctx) => {
    const r = value as Record<string, unknown>;
    if (typeof r.maxDelay === 'number' && typeof r.delay === 'number' && r.maxDelay < r.delay) {
      ctx.addIssue({
        code: 'custom',
        path: ['maxDelay'],
        input: r.maxDelay,
        message: `must not be shorter than delay (${formatDuration(r.delay)})`,
      });
    }
  }, whenObject)
  .transform(
    (r): RetryDefinition => ({
      max: r.max,
      backoff: r.backoff,
      delayMs: r.delay,
      maxDelayMs: r.maxDelay ?? null,
    }),
  );

const httpUrl = text(URL_TEXT)
  .regex(HTTP_URL_START, { error: (iss: RawIssue) => badUrl(iss.input) })
  .refine(isHttpUrl, { error: (iss: RawIssue) => badUrl(iss.input) });
const badUrl = (value: unknown) => `invalid URL ${JSON.stringify(value)}; accepted: ${URL_TEXT}`;

const statusCode = integer(100, 599);

const httpSchema = fields('an HTTP request', {
  url: httpUrl.optional().meta({ description: `The URL to call: ${URL_TEXT}.` }),
  method: text(`an HTTP method, ${oneOf(HTTP_METHODS)}`)
    .regex(HTTP_METHOD, {
      error: (iss: RawIssue) =>
        `invalid value ${describeValue(iss.input)}; accepted: ${oneOf(HTTP_METHODS)} (any case)`,
    })
    .meta({ examples: [...HTTP_METHODS] })
    .transform((m) => m.toUpperCase())
    .default('GET')
    .meta({ description: `HTTP method, ${oneOf(HTTP_METHODS)} (any case); default GET.` }),
  headers: stringMap('Request headers.').default(() => ({})),
  body: z
    .union([z.string(), z.record(z.string(), z.unknown()), z.array(z.unknown())], {
      error: expected('a string or an object (sent as JSON)'),
    })
    .transform((b) => (typeof b === 'string' ? b : JSON.stringify(b)))
    .optional()
    .meta({ description: 'Request body: a string, or an object or list sent as JSON.' }),
  expectStatus: z
    .union([statusCode, z.array(statusCode)], {
      error: expected('a status code from 100 to 599 or a list of them'),
    })
    .transform((s) => (Array.isArray(s) ? s : [s]))
    .optional()
    .meta({ description: 'Status codes that count as success; without it any 2xx does.' }),
});

const scriptSchema = fields('a script', {
  interpreter: nonEmptyText('a program that runs the source file, like sh, bash or python3').meta({
    description: 'Program the source file is given to (sh, bash, python3, node, …).',
  }),
  source: nonEmptyText('the script text').meta({ description: 'The script text.' }),
});

/** The fields that belong to one task type only. */
const TYPE_FIELDS: Record<TaskType, readonly string[]> = {
  shell: ['command'],
  script: ['script'],
  http: ['http', 'url'],
  noop: [],
};

/** JSON Schema conditionals for what zod checks in the task refinement below (for editors). */
function typeConditionals(): Record<string, unknown>[] {
  return TASK_TYPES.map((type) => {
    const notAllowed = Object.fromEntries(
      TASK_TYPES.filter((t) => t !== type).flatMap((t) => TYPE_FIELDS[t].map((f) => [f, false])),
    );
    const then: Record<string, unknown> = { type: 'object', properties: notAllowed };
    if (type === 'shell') then.required = ['command'];
    if (type === 'script') then.required = ['script'];
    if (type === 'http') {
      then.oneOf = [
        { type: 'object', required: ['url'], properties: { http: false } },
        {
          type: 'object',
          required: ['http'],
          properties: { url: false, http: { type: 'object', required: ['url'] } },
        },
      ];
    }
    return { if: { type: 'object', properties: { type: { const: type } }, required: ['type'] }, then };
  });
}

function checkTask(value: unknown, ctx: z.RefinementCtx): void {
  const task = value as Record<string, unknown>;
  const type = task.type as TaskType;
  if (!TASK_TYPES.includes(type)) return; // reported by the type field
  const own = TYPE_FIELDS[type];
  const takes = own.length > 0 ? own.join(' or ') : 'none of command, script, http, url';
  for (const other of TASK_TYPES) {
    if (other === type) continue;
    for (const f of TYPE_FIELDS[other]) {
      if (task[f] !== undefined && !own.includes(f)) {
        ctx.addIssue({
          code: 'custom',
          path: [f],
          input: task[f],
          message: `not allowed for a task of type ${type} (it belongs to type ${other}); a ${type} task takes ${takes}`,
        });
      }
    }
  }
  const required = (path: string[], message: string) =>
    ctx.addIssue({ code: 'custom', path, input: undefined, message });
  if (type === 'shell' && task.command === undefined) {
    required(['command'], 'is required for a shell task; accepted: the command line to run, a string');
  } else if (type === 'script' && task.script === undefined) {
    required(['script'], 'is required for a script task; accepted: an object with interpreter and source');
  } else if (type === 'http') {
    if (task.url !== undefined && task.http !== undefined) {
      ctx.addIssue({
        code: 'custom',
        path: ['url'],
        input: task.url,
        message: 'give the url either as url or as http.url, not both (with an http object, use http.url)',
      });
    } else if (task.url === undefined && task.http === undefined) {
      required(['url'], 'required for an http task; give it as url or as http.url');
    } else if (isRecord(task.http) && task.http.url === undefined) {
      required(['http', 'url'], 'required for an http task; give it as url or as http.url');
    }
  }
}

const TASK_DEFAULTS = { method: 'GET', headers: {}, body: null, expectStatus: [] };

const taskSchema = fields('a task', {
  name: named(TASK_NAME, TASK_NAME_TEXT).meta({
    description: `Task name, unique within the workflow: ${TASK_NAME_TEXT}.`,
  }),
  type: oneOfValues(TASK_TYPES).meta({
    description: 'shell runs command, script runs script, http calls url (or http), noop does nothing.',
  }),
  command: nonEmptyText('the command line to run, a string')
    .optional()
    .meta({ description: 'shell: the command line to run.' }),
  script: scriptSchema.optional().meta({ description: 'script: the interpreter and the script text.' }),
  http: httpSchema.optional().meta({ description: 'http: the request (or give only url).' }),
  url: httpUrl.optional().meta({ description: 'http: shorthand for http.url.' }),
  timeout: duration('Kill an attempt running longer than this. Without it an attempt has no time limit.')
    .refine((ms) => typeof ms !== 'number' || ms > 0, {
      error: 'must be more than 0 (leave timeout out for no time limit)',
    })
    .optional(),
  retries: retriesSchema
    .optional()
    .meta({ description: 'Retries of a failed attempt. Without it a failed attempt fails the task.' }),
  workerGroup: named(WORKER_GROUP, 'letters, digits, ".", "-" and "_"')
    .default('default')
    .meta({ description: 'The group of workers that may run the task.' }),
  routing: oneOfValues(ROUTING_STRATEGIES)
    .default('round-robin')
    .meta({ description: 'How a worker of the group is picked.' }),
  dependsOn: z
    .array(nonEmptyText('a task name'), { error: expected('a list of task names') })
    .default(() => [])
    .meta({ description: 'Tasks that must succeed before this one starts.' }),
  params: paramMap(
    'Task parameters: environment variables of this task (numbers and booleans are turned into strings); they win over the workflow-level and trigger-time ones. Names: environment variable names, not reserved ones (PATH, LD_*, SCHED_*, …; docs/definitions.md#parameters).',
  ).default(() => ({})),
  failover: oneOfValues(FAILOVER_POLICIES)
    .default('rerun')
    .meta({ description: 'What happens to an attempt whose worker died.' }),
})
  .superRefine(checkTask, whenObject)
  .transform((t): TaskDefinition => {
    const h = t.http;
    const http: HttpSpec | null =
      t.type === 'http'
        ? {
            url: (t.url ?? h?.url) as string,
            method: h?.method ?? TASK_DEFAULTS.method,
            headers: h?.headers ?? { ...TASK_DEFAULTS.headers },
            body: h?.body ?? TASK_DEFAULTS.body,
            expectStatus: h?.expectStatus ?? [...TASK_DEFAULTS.expectStatus],
          }
        : null;
    return {
      name: t.name,
      type: t.type,
      command: t.command ?? null,
      script: t.script ?? null,
      http,
      timeoutMs: t.timeout ?? null,
      retries: t.retries ?? { ...NO_RETRIES },
      workerGroup: t.workerGroup,
      routing: t.routing,
      dependsOn: t.dependsOn,
      params: t.params,
      failover: t.failover,
    };
  })
  .meta({ allOf: typeConditionals() });

// ---------------------------------------------------------------------------------------------
// the workflow

/** Finds one cycle in the dependency graph, as a list of names `a → b → a`, or null. */
function findCycle(deps: Map<string, string[]>): string[] | null {
  const state = new Map<string, 'visiting' | 'done'>();
  const stack: string[] = [];
  const visit = (name: string): string[] | null => {
    const s = state.get(name);
    if (s === 'done') return null;
    if (s === 'visiting') return [...stack.slice(stack.indexOf(name)), name];
    state.set(name, 'visiting');
    stack.push(name);
    for (const d of deps.get(name) ?? []) {
      if (!deps.has(d)) continue;
      const found = visit(d);
      if (found) return found;
    }
    stack.pop();
    state.set(name, 'done');
    return null;
  };
  for (const name of deps.keys()) {
    const found = visit(name);
    if (found) return found;
  }
  return null;
}

/** Unique task names, known dependencies, no self-dependency, no cycle. */
function checkGraph(value: unknown, ctx: z.RefinementCtx): void {
  const tasks = (value as Record<string, unknown>).tasks;
  if (!Array.isArray(tasks)) return;
  // Tasks that failed their own checks still take part when their name is valid, so one run
  // reports a bad timeout and an unknown dependency together.
  const positions = new Map<string, number>();
  const deps = new Map<string, (string | undefined)[]>();
  tasks.forEach((task: unknown, i) => {
    if (!isRecord(task) || typeof task.name !== 'string' || !TASK_NAME.test(task.name)) return;
    const first = positions.get(task.name);
    if (first !== undefined) {
      ctx.addIssue({
        code: 'custom',
        path: ['tasks', i, 'name'],
        input: task.name,
        message: `duplicate task name "${task.name}" (also tasks[${first}]); task names must be unique`,
      });
      return;
    }
    positions.set(task.name, i);
    const list = Array.isArray(task.dependsOn) ? task.dependsOn : [];
    // Entries that are not names were reported by dependsOn's own schema; kept as holes for the indexes.
    deps.set(
      task.name,
      list.map((d: unknown) => (typeof d === 'string' && d.trim() !== '' ? d : undefined)),
    );
  });
  const names = [...positions.keys()];
  for (const [name, list] of deps) {
    const i = positions.get(name) as number;
    list.forEach((dep, j) => {
      if (dep === undefined) return;
      const path = ['tasks', i, 'dependsOn', j];
      const add = (message: string) => ctx.addIssue({ code: 'custom', path, input: dep, message });
      if (dep === name) add(`task "${name}" depends on itself`);
      else if (!positions.has(dep)) add(`unknown task "${dep}"; accepted: ${oneOf(names)}`);
      else if (list.indexOf(dep) !== j) add(`"${dep}" is listed twice`);
    });
  }
  const cycle = findCycle(
    new Map(
      [...deps].map(([name, list]) => [name, list.filter((d): d is string => d !== undefined && d !== name)]),
    ),
  );
  if (cycle) {
    ctx.addIssue({
      code: 'custom',
      path: ['tasks', positions.get(cycle[0] as string) as number, 'dependsOn'],
      input: undefined,
      message: `dependency cycle: ${cycle.join(' → ')}; tasks must form a DAG`,
    });
  }
}

/** One workflow definition document: validated and compiled to a `WorkflowDefinition`. */
export const definitionSchema = fields('a workflow definition', {
  name: named(WORKFLOW_NAME, WORKFLOW_NAME_TEXT).meta({
    description: `Workflow name (applying a definition of an existing name makes a new version): ${WORKFLOW_NAME_TEXT}.`,
  }),
  description: text().optional().meta({ description: 'Free text.' }),
  schedule: scheduleSchema.nullable().optional(),
  params: paramMap(
    'Workflow-level parameters and their default values (numbers and booleans are turned into strings); tasks see them. They are also the parameters a trigger may set: a trigger with any other is refused. Names: environment variable names, not reserved ones (PATH, LD_*, SCHED_*, …; docs/definitions.md#parameters).',
  ).default(() => ({})),
  tasks: z
    .array(taskSchema, { error: expected('a list of tasks') })
    .min(1, { error: 'must hold at least one task' })
    .meta({ description: 'The tasks, a DAG through dependsOn. At least one.' }),
})
  .superRefine(checkGraph, whenObject)
  .transform(
    (w): WorkflowDefinition => ({
      name: w.name,
      description: w.description ?? null,
      schedule: w.schedule ?? null,
      params: w.params,
      tasks: w.tasks,
    }),
  );
