import { createLogger } from '@sched/core';
import { ScheduleFirer } from '@sched/master';
import { applyDefinitions, compileDefinitions, createPool, migrate } from '@sched/store';
import { createDatabase } from '@sched/testkit';
import type pg from 'pg';

// Shared setup for the scheduler integration tests: a fresh migrated database per test file.

export const quietLogger = createLogger({ level: process.env.SCHED_TEST_LOG ?? 'silent', name: 'test' });

export async function migratedDatabase(): Promise<{ pool: pg.Pool; url: string; drop: () => Promise<void> }> {
  const db = await createDatabase();
  await migrate(db.url);
  const pool = createPool(db.url, { max: 8 });
  return {
    pool,
    url: db.url,
    drop: async () => {
      await pool.end();
      await db.drop();
    },
  };
}

export interface ScheduleSpec {
  cron?: string;
  misfire?: string;
  misfireThreshold?: string;
  maxCatchUp?: number;
  concurrency?: string;
}

/** Applies `count` workflows `${prefix}-N` with one noop task and the given schedule. Returns workflow ids by name. */
export async function applyScheduledWorkflows(
  pool: pg.Pool,
  prefix: string,
  count: number,
  spec: ScheduleSpec = {},
): Promise<Map<string, number>> {
  const defs = compileDefinitions(
    Array.from({ length: count }, (_, i) => ({
      label: `${prefix}-${i}`,
      value: {
        name: `${prefix}-${i}`,
        schedule: {
          cron: spec.cron ?? '* * * * * *',
          misfire: spec.misfire ?? 'fire-all',
          ...(spec.misfireThreshold ? { misfireThreshold: spec.misfireThreshold } : {}),
          ...(spec.maxCatchUp ? { maxCatchUp: spec.maxCatchUp } : {}),
          concurrency: spec.concurrency ?? 'allow',
        },
        tasks: [{ name: 'only', type: 'noop' }],
      },
    })),
  );
  await applyDefinitions(pool, defs);
  const { rows } = await pool.query<{ id: number; name: string }>(
    `SELECT id, name FROM workflows WHERE name LIKE $1`,
    [`${prefix}-%`],
  );
  return new Map(rows.map((r) => [r.name, r.id]));
}

/** Runs of the given workflows: fire time (ms), trigger, state, queued, owner. */
export async function runsOf(pool: pg.Pool, prefix: string) {
  const { rows } = await pool.query<{
    id: number;
    name: string;
    schedule_id: number | null;
    fire_ms: number;
    trigger: string;
    state: string;
    queued: boolean;
    owner: string;
    cancel_requested_at: Date | null;
    created_at: Date;
  }>(
    `SELECT r.id, w.name, r.schedule_id, (extract(epoch from r.fire_time) * 1000)::bigint AS fire_ms, r.trigger, r.state, r.queued, r.owner,
            r.cancel_requested_at, r.created_at
       FROM runs r JOIN workflows w ON w.id = r.workflow_id WHERE w.name LIKE $1 ORDER BY w.name, r.fire_time, r.id`,
    [`${prefix}-%`],
  );
  return rows;
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
export const wholeSecondAfter = (ms: number) => Math.floor(ms / 1000) * 1000 + 1000;

/** A firer that is the only live master and always holds its lease. */
export function soleFirer(
  pool: pg.Pool,
  nodeKey: string,
  options: ConstructorParameters<typeof ScheduleFirer>[0]['options'],
): ScheduleFirer {
  return new ScheduleFirer({
    pool,
    nodeKey,
    liveMasters: () => [nodeKey],
    leaseValid: () => true,
    logger: quietLogger,
    options,
  });
}
