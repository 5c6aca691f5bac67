/**
 * The compiled (validated, normalised) form of a workflow definition file (docs/definitions.md).
 * User-facing durations (`10m`) are compiled once to `…Ms` numbers; defaults are filled in, so
 * two files that mean the same thing compile to the same object (and the same digest).
 */

export const TASK_TYPES = ['shell', 'script', 'http', 'noop'] as const;
export type TaskType = (typeof TASK_TYPES)[number];

export const ROUTING_STRATEGIES = [
  'first',
  'last',
  'round-robin',
  'random',
  'weighted-round-robin',
  'consistent-hash',
  'least-frequently-used',
  'least-recently-used',
  'failover',
  'busyover',
  'sharding-broadcast',
  'lowest-load',
] as const;
export type RoutingStrategy = (typeof ROUTING_STRATEGIES)[number];

export const MISFIRE_POLICIES = ['skip', 'fire-once-now', 'fire-all'] as const;
export type MisfirePolicy = (typeof MISFIRE_POLICIES)[number];

export const CONCURRENCY_POLICIES = ['allow', 'forbid', 'replace', 'queue'] as const;
export type ConcurrencyPolicy = (typeof CONCURRENCY_POLICIES)[number];

export const BACKOFF_KINDS = ['fixed', 'exponential'] as const;
export type BackoffKind = (typeof BACKOFF_KINDS)[number];

export const FAILOVER_POLICIES = ['rerun', 'fail'] as const;
export type FailoverPolicy = (typeof FAILOVER_POLICIES)[number];

export interface ScheduleDefinition {
  cron: string;
  /** IANA zone. @defaultValue 'UTC' */
  timezone: string;
  /** @defaultValue 'fire-once-now' */
  misfire: MisfirePolicy;
  /** A fire found later than this is a misfire. @defaultValue 5000 (`5s`) */
  misfireThresholdMs: number;
  /** fire-all catches up at most this many missed fires (the most recent ones). @defaultValue 100 */
  maxCatchUp: number;
  /** @defaultValue 'allow' */
  concurrency: ConcurrencyPolicy;
  /** Epoch ms, inclusive; null = no lower bound. */
  startAt: number | null;
  /** Epoch ms, exclusive; null = no upper bound. */
  endAt: number | null;
  /** @defaultValue false */
  paused: boolean;
}

export interface RetryDefinition {
  max: number;
  backoff: BackoffKind;
  delayMs: number;
  maxDelayMs: number | null;
}

export interface HttpSpec {
  url: string;
  method: string;
  headers: Record<string, string>;
  body: string | null;
  /** Status codes that count as success; empty = any 2xx. */
  expectStatus: number[];
}

export interface ScriptSpec {
  interpreter: string;
  source: string;
}

export interface TaskDefinition {
  name: string;
  type: TaskType;
  /** shell only */
  command: string | null;
  /** script only */
  script: ScriptSpec | null;
  /** http only */
  http: HttpSpec | null;
  timeoutMs: number | null;
  retries: RetryDefinition;
  /** @defaultValue 'default' */
  workerGroup: string;
  /** @defaultValue 'round-robin' */
  routing: RoutingStrategy;
  dependsOn: string[];
  params: Record<string, string>;
  /** What happens to an attempt whose worker died. @defaultValue 'rerun' */
  failover: FailoverPolicy;
}

export interface WorkflowDefinition {
  name: string;
  description: string | null;
  schedule: ScheduleDefinition | null;
  params: Record<string, string>;
  tasks: TaskDefinition[];
}

// ---------------------------------------------------------------------------------------------
// parameters (docs/definitions.md#parameters)

/** A parameter's name: an environment variable name (the task sees each parameter as one). */
export const PARAM_NAME_PATTERN = /^[A-Za-z_][A-Za-z0-9_]{0,127}$/;
export const PARAM_NAME_TEXT = 'letters, digits and _, not starting with a digit, at most 128 characters';

/**
 * Environment variables no parameter may set, in a definition or at trigger time: they change
 * which code the task's shell, the dynamic loader or a language runtime loads or runs, or how the
 * shell splits words, before the task's own code has a say. Case matters (`path` is a fine name).
 */
export const RESERVED_PARAM_NAMES = [
  'PATH',
  'IFS',
  'ENV',
  'BASH_ENV',
  'CDPATH',
  'PS4',
  'SHELLOPTS',
  'BASHOPTS',
  'GLOBIGNORE',
  'NODE_OPTIONS',
  'NODE_PATH',
  'PYTHONPATH',
  'PYTHONHOME',
  'PYTHONSTARTUP',
  'PERL5LIB',
  'PERL5OPT',
  'PERLLIB',
  'RUBYLIB',
  'RUBYOPT',
  'JAVA_TOOL_OPTIONS',
  'JDK_JAVA_OPTIONS',
  '_JAVA_OPTIONS',
  'GCONV_PATH',
] as const;

/**
 * Prefixes no parameter name may start with: `SCHED_` (sched's own variables, docs/tasks.md#environment),
 * `LD_` (the dynamic loader: LD_PRELOAD, LD_LIBRARY_PATH, LD_AUDIT, …), `DYLD_` (its macOS
 * counterpart), `BASH_FUNC_` (exported shell functions).
 */
export const RESERVED_PARAM_PREFIXES = ['SCHED_', 'LD_', 'DYLD_', 'BASH_FUNC_'] as const;

/** What is wrong with a parameter name (not an environment variable name, or reserved); null if nothing. */
export function paramNameProblem(name: string): string | null {
  if (!PARAM_NAME_PATTERN.test(name)) {
    return `invalid parameter name ${JSON.stringify(name)}; accepted: ${PARAM_NAME_TEXT}`;
  }
  if (name.startsWith('SCHED_')) {
    return `parameter name ${name} is reserved: SCHED_* names are sched's own variables (docs/tasks.md#environment)`;
  }
  const prefix = RESERVED_PARAM_PREFIXES.find((p) => name.startsWith(p));
  if (prefix !== undefined || (RESERVED_PARAM_NAMES as readonly string[]).includes(name)) {
    return `parameter name ${name} is reserved: it would change how the task's programs are found, loaded or run (the reserved names: docs/definitions.md#parameters)`;
  }
  return null;
}
