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
