// The documented `--json` shapes (docs/design.md#contract, docs/cli.md) as zod schemas: a field renamed,
// missing or of another type fails the test. Fields may be added (loose objects).
import { z } from 'zod';

const iso = z.string().regex(/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/, 'ISO 8601 with milliseconds');
const address = z.string().regex(/^[^:\s]+:\d+$/, 'host:port');
const epochMs = z.number().int().positive();

export const clusterStatusShape = z.looseObject({
  masters: z.array(
    z.looseObject({ address, startTime: epochMs, leader: z.boolean(), state: z.string(), reportedAt: iso }),
  ),
  workers: z.array(
    z.looseObject({
      address,
      startTime: epochMs,
      groups: z.array(z.string()),
      state: z.string(),
      running: z.number().int().nonnegative(),
      reportedAt: iso,
    }),
  ),
});

export const failoverListShape = z.array(
  z.looseObject({
    role: z.enum(['master', 'worker']),
    address,
    startTime: epochMs,
    failedOverAt: iso,
    by: z.string().min(1),
  }),
);

const runState = z.enum(['pending', 'running', 'succeeded', 'failed', 'cancelled']);

export const runListShape = z.array(
  z.looseObject({
    id: z.number().int().positive(),
    workflow: z.string(),
    state: runState,
    fireTime: iso.nullable(),
    createdAt: iso,
    endedAt: iso.nullable(),
  }),
);

export const runShowShape = z.looseObject({
  id: z.number().int().positive(),
  workflow: z.string(),
  state: runState,
  owner: z.string().nullable(),
  fireToStartMs: z.number().nullable(),
  tasks: z.array(
    z.looseObject({
      name: z.string(),
      state: z.string(),
      attempts: z.array(
        z.looseObject({
          id: z.number().int().positive(),
          attempt: z.number().int().positive(),
          worker: address.nullable(),
          workerStartTime: epochMs.nullable(),
          state: z.enum([
            'pending',
            'dispatched',
            'running',
            'succeeded',
            'failed',
            'timed-out',
            'killed',
            'failed-over',
          ]),
          startedAt: iso.nullable(),
          endedAt: iso.nullable(),
          exitCode: z.number().int().nullable(),
        }),
      ),
    }),
  ),
});

export const workflowListShape = z.array(
  z.looseObject({
    name: z.string(),
    version: z.number().int().positive(),
    tasks: z.number().int().nonnegative(),
    schedule: z.looseObject({ cron: z.string(), timezone: z.string(), paused: z.boolean() }).nullable(),
    nextFireTime: iso.nullable(),
    activeRuns: z.number().int().nonnegative(),
    updatedAt: iso,
  }),
);

export const workflowGetShape = z.looseObject({
  name: z.string(),
  version: z.number().int().positive(),
  definition: z.looseObject({ name: z.string(), tasks: z.array(z.looseObject({ name: z.string() })) }),
  paused: z.boolean().nullable(),
  nextFireTime: iso.nullable(),
});

export const applyShape = z.array(
  z.looseObject({
    name: z.string(),
    version: z.number().int().positive(),
    status: z.enum(['created', 'updated', 'unchanged']),
  }),
);

export const zkLsShape = z.array(
  z.looseObject({
    path: z.string().startsWith('/'),
    ephemeralOwner: z.string().nullable(),
    numChildren: z.number().int().nonnegative(),
    dataLength: z.number().int().nonnegative(),
    modified: iso,
  }),
);

export const zkGetShape = z.looseObject({
  path: z.string(),
  data: z.unknown(),
  stat: z.looseObject({
    ephemeralOwner: z.string().nullable(),
    created: iso,
    modified: iso,
    version: z.number().int().nonnegative(),
  }),
});

export const triggerShape = z.looseObject({
  commandId: z.number().int().positive(),
  runId: z.number().int().positive(),
});
