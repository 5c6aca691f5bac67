import type { Issue } from '@sched/core';
import { parseDuration } from '@sched/core';
import { CRON_ACCEPTED, checkCron } from '../cron/cron-schedule.js';
import {
  BACKOFF_KINDS,
  CONCURRENCY_POLICIES,
  FAILOVER_POLICIES,
  MISFIRE_POLICIES,
  type RetryDefinition,
  ROUTING_STRATEGIES,
  type ScheduleDefinition,
  TASK_TYPES,
  type TaskDefinition,
  type WorkflowDefinition,
} from './definition-types.js';

/**
 * Validates one raw definition (parsed YAML/JSON) and compiles it. Every problem is collected
 * with its path — `tasks[1].dependsOn[0]: unknown task "lod"; accepted: one of extract, load` —
 * instead of stopping at the first, so a user fixes a file in one pass.
 */

const WORKFLOW_NAME = /^[a-z0-9][a-z0-9-]{0,62}$/;
const TASK_NAME = /^[a-z0-9][a-z0-9_-]{0,62}$/;
const HTTP_METHODS = ['GET', 'POST', 'PUT', 'PATCH', 'DELETE', 'HEAD'] as const;

type Raw = Record<string, unknown>;

function describe(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'a list';
  if (typeof value === 'object') return 'an object';
  if (typeof value === 'string') return `the string ${JSON.stringify(value)}`;
  return `${typeof value} ${String(value)}`;
}

const oneOf = (values: readonly string[]) => `one of ${values.join(', ')}`;
const join = (base: string, key: string) => (base ? `${base}.${key}` : key);

class Collector {
  readonly issues: Issue[] = [];
  add(path: string, message: string): void {
    this.issues.push({ path, message });
  }

  /** An object with only the given keys; reports unknown keys. Returns undefined when not an object. */
  object(value: unknown, path: string, accepted: readonly string[]): Raw | undefined {
    if (typeof value !== 'object' || value === null || Array.isArray(value)) {
      this.add(path, `expected an object, got ${describe(value)}`);
      return undefined;
    }
    for (const key of Object.keys(value)) {
      if (!accepted.includes(key))
        this.add(join(path, key), `unknown field "${key}"; accepted: ${oneOf(accepted)}`);
    }
    return value as Raw;
  }

  string(
    value: unknown,
    path: string,
    opts: { pattern?: RegExp; patternText?: string; nonEmpty?: boolean } = {},
  ): string | undefined {
    if (typeof value !== 'string') {
      this.add(path, `expected a string, got ${describe(value)}`);
      return undefined;
    }
    if ((opts.nonEmpty ?? true) && value.trim() === '') {
      this.add(path, 'must not be empty');
      return undefined;
    }
    if (opts.pattern && !opts.pattern.test(value)) {
      this.add(path, `invalid value ${JSON.stringify(value)}; accepted: ${opts.patternText}`);
      return undefined;
    }
    return value;
  }

  required(obj: Raw, key: string, path: string): unknown {
    if (!(key in obj) || obj[key] === undefined || obj[key] === null) {
      this.add(join(path, key), 'is required');
      return undefined;
    }
    return obj[key];
  }

  enumValue<T extends string>(value: unknown, path: string, values: readonly T[]): T | undefined {
    if (typeof value !== 'string' || !values.includes(value as T)) {
      this.add(path, `invalid value ${describe(value)}; accepted: ${oneOf(values)}`);
      return undefined;
    }
    return value as T;
  }

  duration(value: unknown, path: string): number | undefined {
    if (typeof value !== 'string' && typeof value !== 'number') {
      this.add(path, `expected a duration like 30s or 10m, got ${describe(value)}`);
      return undefined;
    }
    try {
      return parseDuration(value);
    } catch (err) {
      // parseDuration's message already says what is accepted; keep it, under our path.
      const msg = err instanceof Error ? err.message : String(err);
      this.add(path, msg);
      return undefined;
    }
  }

  integer(value: unknown, path: string, min: number, max: number): number | undefined {
    if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
      this.add(path, `expected an integer from ${min} to ${max}, got ${describe(value)}`);
      return undefined;
    }
    return value;
  }

  boolean(value: unknown, path: string): boolean | undefined {
    if (typeof value !== 'boolean') {
      this.add(path, `expected true or false, got ${describe(value)}`);
      return undefined;
    }
    return value;
  }

  stringMap(value: unknown, path: string): Record<string, string> {
    const out: Record<string, string> = {};
    if (typeof value !== 'object' || value === null || Array.isArray(value)) {
      this.add(path, `expected an object of names to strings, got ${describe(value)}`);
      return out;
    }
    for (const [k, v] of Object.entries(value)) {
      if (typeof v === 'string') out[k] = v;
      else if (typeof v === 'number' || typeof v === 'boolean') out[k] = String(v);
      else this.add(join(path, k), `expected a string, number or boolean, got ${describe(v)}`);
    }
    return out;
  }
}

/** ISO 8601 instant with offset, or a local date / date-time read in the schedule's time zone. */
function parseInstant(c: Collector, value: unknown, path: string, timezone: string): number | undefined {
  if (value instanceof Date) return value.getTime(); // YAML may already have parsed a timestamp
  if (typeof value !== 'string') {
    c.add(path, `expected an ISO 8601 date or date-time, got ${describe(value)}`);
    return undefined;
  }
  const m =
    /^(\d{4})-(\d{2})-(\d{2})(?:[T ](\d{2}):(\d{2})(?::(\d{2})(?:\.(\d{1,3}))?)?)?(Z|[+-]\d{2}:?\d{2})?$/.exec(
      value,
    );
  const bad = () =>
    c.add(
      path,
      `invalid date ${JSON.stringify(value)}; accepted: ISO 8601 like 2026-01-31, 2026-01-31T09:00:00 (in the schedule's timezone) or 2026-01-31T09:00:00Z`,
    );
  if (!m) {
    bad();
    return undefined;
  }
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
  const asUtc = Date.UTC(...fields);
  const check = new Date(asUtc);
  if (
    check.getUTCMonth() !== fields[1] ||
    check.getUTCDate() !== fields[2] ||
    fields[3] > 23 ||
    fields[4] > 59 ||
    fields[5] > 59
  ) {
    bad();
    return undefined;
  }
  if (offset) {
    if (offset === 'Z') return asUtc;
    const om = /^([+-])(\d{2}):?(\d{2})$/.exec(offset);
    const sign = om?.[1] === '-' ? -1 : 1;
    return asUtc - sign * (Number(om?.[2]) * 60 + Number(om?.[3])) * 60_000;
  }
  return zonedWallTimeToEpoch(asUtc, timezone);
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

const SCHEDULE_FIELDS = [
  'cron',
  'timezone',
  'misfire',
  'misfireThreshold',
  'maxCatchUp',
  'concurrency',
  'start',
  'end',
  'paused',
];

function validateSchedule(c: Collector, raw: unknown, path: string): ScheduleDefinition | null {
  const obj = c.object(raw, path, SCHEDULE_FIELDS);
  if (!obj) return null;
  let timezone = 'UTC';
  if (obj.timezone !== undefined) {
    const tz = c.string(obj.timezone, join(path, 'timezone'));
    if (tz !== undefined) {
      try {
        new Intl.DateTimeFormat('en-US', { timeZone: tz });
        timezone = tz;
      } catch {
        c.add(
          join(path, 'timezone'),
          `unknown time zone ${JSON.stringify(tz)}; accepted: an IANA name like UTC, Europe/London, America/New_York`,
        );
        timezone = '';
      }
    }
  }
  const cronRaw = c.required(obj, 'cron', path);
  let cron: string | undefined;
  if (cronRaw !== undefined) {
    cron = c.string(cronRaw, join(path, 'cron'));
    if (cron !== undefined) {
      const why = checkCron(cron, timezone || 'UTC');
      if (why) {
        c.add(
          join(path, 'cron'),
          `invalid cron expression ${JSON.stringify(cron)}: ${why}; accepted: ${CRON_ACCEPTED}`,
        );
        cron = undefined;
      }
    }
  }
  const misfire =
    obj.misfire === undefined
      ? 'fire-once-now'
      : c.enumValue(obj.misfire, join(path, 'misfire'), MISFIRE_POLICIES);
  const concurrency =
    obj.concurrency === undefined
      ? 'allow'
      : c.enumValue(obj.concurrency, join(path, 'concurrency'), CONCURRENCY_POLICIES);
  const misfireThresholdMs =
    obj.misfireThreshold === undefined
      ? 5000
      : c.duration(obj.misfireThreshold, join(path, 'misfireThreshold'));
  const maxCatchUp =
    obj.maxCatchUp === undefined ? 100 : c.integer(obj.maxCatchUp, join(path, 'maxCatchUp'), 1, 10_000);
  const paused = obj.paused === undefined ? false : c.boolean(obj.paused, join(path, 'paused'));
  const tzForDates = timezone || 'UTC';
  const startAt =
    obj.start === undefined ? null : parseInstant(c, obj.start, join(path, 'start'), tzForDates);
  const endAt = obj.end === undefined ? null : parseInstant(c, obj.end, join(path, 'end'), tzForDates);
  if (typeof startAt === 'number' && typeof endAt === 'number' && endAt <= startAt) {
    c.add(join(path, 'end'), `must be after start (${new Date(startAt).toISOString()})`);
  }
  if (
    cron === undefined ||
    !timezone ||
    misfire === undefined ||
    concurrency === undefined ||
    misfireThresholdMs === undefined ||
    maxCatchUp === undefined ||
    paused === undefined ||
    startAt === undefined ||
    endAt === undefined
  ) {
    return null;
  }
  return { cron, timezone, misfire, misfireThresholdMs, maxCatchUp, concurrency, startAt, endAt, paused };
}

const RETRY_FIELDS = ['max', 'backoff', 'delay', 'maxDelay'];

function validateRetries(c: Collector, raw: unknown, path: string): RetryDefinition {
  const none: RetryDefinition = { max: 0, backoff: 'fixed', delayMs: 0, maxDelayMs: null };
  if (raw === undefined) return none;
  const obj = c.object(raw, path, RETRY_FIELDS);
  if (!obj) return none;
  const max = obj.max === undefined ? 0 : (c.integer(obj.max, join(path, 'max'), 0, 100) ?? 0);
  const backoff =
    obj.backoff === undefined
      ? 'fixed'
      : (c.enumValue(obj.backoff, join(path, 'backoff'), BACKOFF_KINDS) ?? 'fixed');
  const delayMs = obj.delay === undefined ? 1000 : (c.duration(obj.delay, join(path, 'delay')) ?? 0);
  const maxDelayMs =
    obj.maxDelay === undefined ? null : (c.duration(obj.maxDelay, join(path, 'maxDelay')) ?? null);
  if (maxDelayMs !== null && maxDelayMs < delayMs)
    c.add(join(path, 'maxDelay'), 'must not be shorter than delay');
  return { max, backoff, delayMs, maxDelayMs };
}

const TASK_FIELDS = [
  'name',
  'type',
  'command',
  'script',
  'http',
  'url',
  'timeout',
  'retries',
  'workerGroup',
  'routing',
  'dependsOn',
  'params',
  'failover',
];
const SCRIPT_FIELDS = ['interpreter', 'source'];
const HTTP_FIELDS = ['url', 'method', 'headers', 'body', 'expectStatus'];
const TYPE_FIELDS: Record<string, string[]> = {
  shell: ['command'],
  script: ['script'],
  http: ['http', 'url'],
  noop: [],
};

function validateTask(c: Collector, raw: unknown, path: string): TaskDefinition | undefined {
  const obj = c.object(raw, path, TASK_FIELDS);
  if (!obj) return undefined;
  const nameRaw = c.required(obj, 'name', path);
  const name =
    nameRaw === undefined
      ? undefined
      : c.string(nameRaw, join(path, 'name'), {
          pattern: TASK_NAME,
          patternText:
            'lower-case letters, digits, "-" and "_", starting with a letter or digit, at most 63 characters',
        });
  const typeRaw = c.required(obj, 'type', path);
  const type = typeRaw === undefined ? undefined : c.enumValue(typeRaw, join(path, 'type'), TASK_TYPES);

  // Fields that belong to another task type are a mistake worth naming.
  if (type !== undefined) {
    for (const [otherType, fields] of Object.entries(TYPE_FIELDS)) {
      if (otherType === type) continue;
      for (const f of fields) {
        if (obj[f] !== undefined && !(TYPE_FIELDS[type] ?? []).includes(f)) {
          c.add(join(path, f), `not allowed for a task of type ${type} (it belongs to type ${otherType})`);
        }
      }
    }
  }

  let command: string | null = null;
  let script: TaskDefinition['script'] = null;
  let http: TaskDefinition['http'] = null;
  if (type === 'shell') {
    const v = c.required(obj, 'command', path);
    if (v !== undefined) command = c.string(v, join(path, 'command')) ?? null;
  } else if (type === 'script') {
    const v = c.required(obj, 'script', path);
    if (v !== undefined) {
      const s = c.object(v, join(path, 'script'), SCRIPT_FIELDS);
      if (s) {
        const p = join(path, 'script');
        const interpreter = c.required(s, 'interpreter', p);
        const source = c.required(s, 'source', p);
        const i = interpreter === undefined ? undefined : c.string(interpreter, join(p, 'interpreter'));
        const src = source === undefined ? undefined : c.string(source, join(p, 'source'));
        if (i !== undefined && src !== undefined) script = { interpreter: i, source: src };
      }
    }
  } else if (type === 'http') {
    http = validateHttp(c, obj, path);
  }

  const timeoutMs =
    obj.timeout === undefined ? null : (c.duration(obj.timeout, join(path, 'timeout')) ?? null);
  if (timeoutMs === 0) c.add(join(path, 'timeout'), 'must be more than 0');
  const retries = validateRetries(c, obj.retries, join(path, 'retries'));
  const workerGroup =
    obj.workerGroup === undefined
      ? 'default'
      : (c.string(obj.workerGroup, join(path, 'workerGroup'), {
          pattern: /^[A-Za-z0-9_.-]+$/,
          patternText: 'letters, digits, ".", "-" and "_"',
        }) ?? 'default');
  const routing =
    obj.routing === undefined
      ? 'round-robin'
      : (c.enumValue(obj.routing, join(path, 'routing'), ROUTING_STRATEGIES) ?? 'round-robin');
  const failover =
    obj.failover === undefined
      ? 'rerun'
      : (c.enumValue(obj.failover, join(path, 'failover'), FAILOVER_POLICIES) ?? 'rerun');
  const params = obj.params === undefined ? {} : c.stringMap(obj.params, join(path, 'params'));
  const dependsOn: string[] = [];
  if (obj.dependsOn !== undefined) {
    if (!Array.isArray(obj.dependsOn)) {
      c.add(join(path, 'dependsOn'), `expected a list of task names, got ${describe(obj.dependsOn)}`);
    } else {
      obj.dependsOn.forEach((d, i) => {
        const dep = c.string(d, `${join(path, 'dependsOn')}[${i}]`);
        if (dep !== undefined) dependsOn.push(dep);
        else dependsOn.push('\u0000invalid');
      });
    }
  }
  if (name === undefined || type === undefined) return undefined;
  return {
    name,
    type,
    command,
    script,
    http,
    timeoutMs,
    retries,
    workerGroup,
    routing,
    dependsOn,
    params,
    failover,
  };
}

function validateHttp(c: Collector, task: Raw, path: string): TaskDefinition['http'] {
  let obj: Raw | undefined;
  let base = join(path, 'http');
  if (task.http !== undefined && task.url !== undefined) {
    c.add(join(path, 'url'), 'give the url either as url or as http.url, not both');
    return null;
  }
  if (task.url !== undefined) {
    obj = { url: task.url };
    base = path;
  } else {
    const v = c.required(task, 'http', path);
    if (v === undefined) return null;
    obj = c.object(v, base, HTTP_FIELDS);
  }
  if (!obj) return null;
  const urlRaw = c.required(obj, 'url', base);
  let url: string | undefined;
  if (urlRaw !== undefined) {
    url = c.string(urlRaw, join(base, 'url'));
    if (url !== undefined) {
      try {
        const u = new URL(url);
        if (u.protocol !== 'http:' && u.protocol !== 'https:') throw new Error('protocol');
      } catch {
        c.add(
          join(base, 'url'),
          `invalid URL ${JSON.stringify(url)}; accepted: an absolute http:// or https:// URL`,
        );
        url = undefined;
      }
    }
  }
  const method =
    obj.method === undefined
      ? 'GET'
      : c.enumValue(
          typeof obj.method === 'string' ? obj.method.toUpperCase() : obj.method,
          join(base, 'method'),
          HTTP_METHODS,
        );
  const headers = obj.headers === undefined ? {} : c.stringMap(obj.headers, join(base, 'headers'));
  let body: string | null = null;
  if (obj.body !== undefined) {
    if (typeof obj.body === 'string') body = obj.body;
    else if (typeof obj.body === 'object' && obj.body !== null) body = JSON.stringify(obj.body);
    else
      c.add(join(base, 'body'), `expected a string or an object (sent as JSON), got ${describe(obj.body)}`);
  }
  let expectStatus: number[] = [];
  if (obj.expectStatus !== undefined) {
    const list = Array.isArray(obj.expectStatus) ? obj.expectStatus : [obj.expectStatus];
    expectStatus = list
      .map((s, i) =>
        c.integer(
          s,
          Array.isArray(obj?.expectStatus)
            ? `${join(base, 'expectStatus')}[${i}]`
            : join(base, 'expectStatus'),
          100,
          599,
        ),
      )
      .filter((s): s is number => s !== undefined);
  }
  if (url === undefined || method === undefined) return null;
  return { url, method, headers, body, expectStatus };
}

/** Finds one cycle in the dependency graph, as a list of names `a → b → a`, or null. */
function findCycle(tasks: TaskDefinition[]): string[] | null {
  const deps = new Map(tasks.map((t) => [t.name, t.dependsOn]));
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
  for (const t of tasks) {
    const found = visit(t.name);
    if (found) return found;
  }
  return null;
}

const WORKFLOW_FIELDS = ['name', 'description', 'schedule', 'params', 'tasks'];

/** Validates and compiles one definition. Returns issues (paths prefixed by `prefix`) or the definition. */
export function validateDefinition(
  raw: unknown,
  prefix = '',
): { ok: true; definition: WorkflowDefinition } | { ok: false; issues: Issue[] } {
  const c = new Collector();
  const obj = c.object(raw, prefix, WORKFLOW_FIELDS);
  if (!obj) return { ok: false, issues: c.issues };
  const nameRaw = c.required(obj, 'name', prefix);
  const name =
    nameRaw === undefined
      ? undefined
      : c.string(nameRaw, join(prefix, 'name'), {
          pattern: WORKFLOW_NAME,
          patternText:
            'lower-case letters, digits and "-", starting with a letter or digit, at most 63 characters',
        });
  const description =
    obj.description === undefined
      ? null
      : (c.string(obj.description, join(prefix, 'description'), { nonEmpty: false }) ?? null);
  const schedule =
    obj.schedule === undefined || obj.schedule === null
      ? null
      : validateSchedule(c, obj.schedule, join(prefix, 'schedule'));
  const params = obj.params === undefined ? {} : c.stringMap(obj.params, join(prefix, 'params'));

  const tasks: TaskDefinition[] = [];
  const tasksPath = join(prefix, 'tasks');
  const tasksRaw = c.required(obj, 'tasks', prefix);
  const positions = new Map<string, number>();
  if (tasksRaw !== undefined) {
    if (!Array.isArray(tasksRaw)) c.add(tasksPath, `expected a list of tasks, got ${describe(tasksRaw)}`);
    else if (tasksRaw.length === 0) c.add(tasksPath, 'must hold at least one task');
    else {
      tasksRaw.forEach((t, i) => {
        const task = validateTask(c, t, `${tasksPath}[${i}]`);
        if (!task) return;
        const first = positions.get(task.name);
        if (first !== undefined) {
          c.add(
            `${tasksPath}[${i}].name`,
            `duplicate task name "${task.name}" (also tasks[${first}]); task names must be unique`,
          );
          return;
        }
        positions.set(task.name, i);
        tasks.push(task);
      });
      const names = [...positions.keys()];
      for (const task of tasks) {
        const i = positions.get(task.name) as number;
        task.dependsOn.forEach((dep, j) => {
          if (dep === '\u0000invalid') return;
          const p = `${tasksPath}[${i}].dependsOn[${j}]`;
          if (dep === task.name) c.add(p, `task "${task.name}" depends on itself`);
          else if (!positions.has(dep)) c.add(p, `unknown task "${dep}"; accepted: ${oneOf(names)}`);
          else if (task.dependsOn.indexOf(dep) !== j) c.add(p, `"${dep}" is listed twice`);
        });
        task.dependsOn = task.dependsOn.filter((d) => d !== '\u0000invalid');
      }
      const cycle = findCycle(
        tasks.map((t) => ({ ...t, dependsOn: t.dependsOn.filter((d) => d !== t.name) })),
      );
      if (cycle) {
        const at = positions.get(cycle[0] as string) as number;
        c.add(
          `${tasksPath}[${at}].dependsOn`,
          `dependency cycle: ${cycle.join(' → ')}; tasks must form a DAG`,
        );
      }
    }
  }
  if (c.issues.length > 0 || name === undefined) return { ok: false, issues: c.issues };
  return { ok: true, definition: { name, description, schedule, params, tasks } };
}
