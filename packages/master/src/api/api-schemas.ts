import {
  BACKOFF_KINDS,
  CONCURRENCY_POLICIES,
  FAILOVER_POLICIES,
  MISFIRE_POLICIES,
  ROUTING_STRATEGIES,
  TASK_TYPES,
  type WorkflowDefinition,
} from '@sched/store';
import { z } from 'zod';

/**
 * The REST API's request and response shapes as zod schemas (docs/api.md, docs/cli.md): the
 * server validates requests with them, the OpenAPI document is generated from them, and the
 * TypeScript types of the JSON the routes build are inferred from them. Fields may be added,
 * never renamed: `address` is `host:port`, `startTime`/`workerStartTime` epoch ms, every other
 * time ISO 8601 with milliseconds.
 */

const iso = z.iso.datetime().describe('ISO 8601 with milliseconds, UTC');
const isoOrNull = iso.nullable();
const address = z.string().describe('host:port');
const epochMs = z.number().int().describe('epoch milliseconds');
const id = z.number().int().positive();

export const RUN_STATES = ['pending', 'running', 'succeeded', 'failed', 'cancelled'] as const;
export const RUN_TRIGGERS = ['schedule', 'misfire', 'manual', 'rerun', 'backfill'] as const;
export const ATTEMPT_STATES = [
  'pending',
  'dispatched',
  'running',
  'succeeded',
  'failed',
  'timed-out',
  'killed',
  'failed-over',
] as const;

// ---- path and query parameters ----

/** A positive integer id in a path (`/v1/runs/42`), as a number. */
export const idParam = (what: string) =>
  z
    .string()
    .regex(/^[1-9]\d{0,15}$/, {
      error: (iss) =>
        `expected a positive integer ${what}, got ${JSON.stringify(String(iss.input).slice(0, 40))}`,
    })
    .transform(Number)
    .describe(what);

export const WORKFLOW_NAME = /^[a-z0-9][a-z0-9-]{0,62}$/;
export const nameParams = z.object({
  name: z
    .string()
    .regex(WORKFLOW_NAME, {
      error: (iss) =>
        `expected a workflow name (lower-case letters, digits and -, up to 63), got ${JSON.stringify(String(iss.input).slice(0, 80))}`,
    })
    .describe('workflow name'),
});

/** `true`/`false` in a query string. */
export const queryBoolean = (what: string) =>
  z
    .enum(['true', 'false'], { error: (iss) => `expected true or false, got ${JSON.stringify(iss.input)}` })
    .transform((v) => v === 'true')
    .describe(what);

// ---- responses ----

export const healthSchema = z.object({
  status: z.literal('ok'),
  key: z.string().nullable().describe('the answering master\u2019s incarnation key (null while starting)'),
});

export const readinessSchema = z.object({
  ready: z.boolean(),
  key: z.string().nullable(),
  lease: z.boolean().describe('the ZooKeeper lease is valid: this master may act'),
  db: z.boolean().describe('PostgreSQL answered in time'),
  leader: z.boolean(),
  reasons: z.array(z.string()).describe('why not ready; empty when ready'),
});

export const masterStatusSchema = z.object({
  address,
  startTime: epochMs,
  leader: z.boolean(),
  state: z.string(),
  reportedAt: isoOrNull,
  key: z.string(),
  pid: z.number().int().nullable(),
  version: z.string().nullable(),
  heartbeatAgeMs: z.number().nullable().describe('reader\u2019s wall clock minus reportedAt'),
  cpu: z.number().nullable(),
  memory: z.number().nullable(),
  load: z.number().nullable(),
});

export const workerStatusSchema = z.object({
  address,
  startTime: epochMs,
  groups: z.array(z.string()),
  state: z.string(),
  running: z.number().int().nonnegative(),
  reportedAt: isoOrNull,
  key: z.string(),
  pid: z.number().int().nullable(),
  version: z.string().nullable(),
  heartbeatAgeMs: z.number().nullable(),
  capacity: z.number().nullable(),
  weight: z.number().nullable(),
  cpu: z.number().nullable(),
  memory: z.number().nullable(),
  load: z.number().nullable(),
});

export const clusterStatusSchema = z.object({
  masters: z.array(masterStatusSchema),
  workers: z.array(workerStatusSchema),
});

export const clusterAnswerSchema = clusterStatusSchema.extend({
  answeredBy: z.string().describe('incarnation key of the master that answered'),
});

export const failoverRecordSchema = z.object({
  role: z.enum(['master', 'worker']),
  address,
  startTime: epochMs,
  failedOverAt: iso,
  by: z.string().describe('incarnation key of the leader that failed the node over'),
  key: z.string(),
  pid: z.number().int().nullable(),
  sessionId: z.string().nullable(),
  tasks: z.number().int().nonnegative().describe('task attempts taken over'),
  runs: z.number().int().nonnegative().describe('runs re-assigned'),
});

export const failoverPurgeSchema = z.object({
  removed: z.array(z.string()).describe('znode paths removed'),
  olderThanMs: z.number().int().nonnegative(),
});

export const runSummarySchema = z.object({
  id,
  workflow: z.string(),
  state: z.enum(RUN_STATES),
  fireTime: isoOrNull.describe('the scheduled fire time; null for manual runs'),
  createdAt: iso.describe(
    'when the run row was inserted; for a pre-staged scheduled run, its fire time (inserted before and committed at it)',
  ),
  endedAt: isoOrNull,
  trigger: z.enum(RUN_TRIGGERS),
  startedAt: isoOrNull,
});

export const attemptSchema = z.object({
  id: id.describe('attempt row id: what `sched-ctl task logs ID` takes'),
  attempt: z.number().int().positive(),
  worker: address.nullable().describe('null before dispatch'),
  workerStartTime: epochMs.nullable(),
  state: z.enum(ATTEMPT_STATES),
  startedAt: isoOrNull,
  endedAt: isoOrNull,
  exitCode: z.number().int().nullable(),
  shardIndex: z.number().int().nonnegative(),
  shardTotal: z.number().int().positive(),
  error: z.string().nullable(),
});

export const taskSchema = z.object({
  name: z.string(),
  state: z.enum(['waiting', ...ATTEMPT_STATES]),
  attempts: z.array(attemptSchema),
});

export const runDetailSchema = z.object({
  id,
  workflow: z.string(),
  workflowVersion: z.number().int().positive(),
  state: z.enum(RUN_STATES),
  owner: z.string().nullable().describe('incarnation key of the master driving the run'),
  trigger: z.enum(RUN_TRIGGERS),
  fireTime: isoOrNull,
  createdAt: iso,
  startedAt: isoOrNull,
  endedAt: isoOrNull,
  cancelRequestedAt: isoOrNull,
  rerunOf: id.nullable(),
  params: z.record(z.string(), z.string()),
  fireToStartMs: z
    .number()
    .nullable()
    .describe('scheduled runs: fire time to the first task\u2019s start on its worker, ms'),
  tasks: z.array(taskSchema),
});

export const cancelAnswerSchema = z.object({
  id,
  state: z.enum(RUN_STATES),
  cancelRequestedAt: isoOrNull,
});

export const rerunAnswerSchema = z.object({
  commandId: id,
  rerunOf: id,
  runId: id.nullable().describe('the new run; null when no master claimed the command in time'),
});

export const triggerAnswerSchema = z.object({
  commandId: id,
  runId: id.nullable().describe('the new run; null when no master claimed the command in time'),
});

export const appliedSchema = z.object({
  applied: z.array(
    z.object({
      name: z.string(),
      version: z.number().int().positive(),
      status: z.enum(['created', 'updated', 'unchanged']),
    }),
  ),
});

export const workflowListItemSchema = z.object({
  name: z.string(),
  version: z.number().int().positive(),
  tasks: z.number().int().nonnegative(),
  schedule: z
    .object({ cron: z.string(), timezone: z.string().nullable(), paused: z.boolean().nullable() })
    .nullable(),
  nextFireTime: isoOrNull.describe('null without a schedule or while paused'),
  activeRuns: z.number().int().nonnegative(),
  updatedAt: iso,
});

const stringMap = z.record(z.string(), z.string());

/**
 * A definition as stored once compiled (`WorkflowDefinition` in @sched/store): every default
 * filled in, durations in ms, instants in epoch ms. The file format is docs/definition.schema.json.
 */
export const compiledDefinitionSchema = z.object({
  name: z.string(),
  description: z.string().nullable(),
  schedule: z
    .object({
      cron: z.string(),
      timezone: z.string(),
      misfire: z.enum(MISFIRE_POLICIES),
      misfireThresholdMs: z.number().int().nonnegative(),
      maxCatchUp: z.number().int().nonnegative(),
      concurrency: z.enum(CONCURRENCY_POLICIES),
      startAt: epochMs.nullable(),
      endAt: epochMs.nullable(),
      paused: z.boolean(),
    })
    .nullable(),
  params: stringMap,
  tasks: z.array(
    z.object({
      name: z.string(),
      type: z.enum(TASK_TYPES),
      command: z.string().nullable(),
      script: z.object({ interpreter: z.string(), source: z.string() }).nullable(),
      http: z
        .object({
          url: z.string(),
          method: z.string(),
          headers: stringMap,
          body: z.string().nullable(),
          expectStatus: z.array(z.number().int()),
        })
        .nullable(),
      timeoutMs: z.number().int().positive().nullable(),
      retries: z.object({
        max: z.number().int().nonnegative(),
        backoff: z.enum(BACKOFF_KINDS),
        delayMs: z.number().int().nonnegative(),
        maxDelayMs: z.number().int().nonnegative().nullable(),
      }),
      workerGroup: z.string(),
      routing: z.enum(ROUTING_STRATEGIES),
      dependsOn: z.array(z.string()),
      params: stringMap,
      failover: z.enum(FAILOVER_POLICIES),
    }),
  ),
}) satisfies z.ZodType<WorkflowDefinition>;

export const workflowSchema = z.object({
  name: z.string(),
  version: z.number().int().positive(),
  definition: compiledDefinitionSchema.describe('the current version as compiled and stored'),
  paused: z.boolean().nullable().describe('null without a schedule'),
  nextFireTime: isoOrNull,
  createdAt: iso,
  updatedAt: iso,
});

export const pauseAnswerSchema = z.object({
  name: z.string(),
  paused: z.boolean(),
  nextFireTime: isoOrNull,
});

export const deletedSchema = z.object({ deleted: z.string() });

export type RunSummaryJson = z.infer<typeof runSummarySchema>;
export type AttemptJson = z.infer<typeof attemptSchema>;
export type TaskJson = z.infer<typeof taskSchema>;
export type RunTaskState = TaskJson['state'];
export type RunDetailJson = z.infer<typeof runDetailSchema>;
export type MasterStatusJson = z.infer<typeof masterStatusSchema>;
export type WorkerStatusJson = z.infer<typeof workerStatusSchema>;
export type ClusterStatusJson = z.infer<typeof clusterStatusSchema>;
export type FailoverRecordJson = z.infer<typeof failoverRecordSchema>;
