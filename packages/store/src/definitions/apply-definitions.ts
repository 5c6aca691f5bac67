import { createHash } from 'node:crypto';
import type pg from 'pg';
import { CronSchedule } from '../cron/cron-schedule.js';
import { withTransaction } from '../db.js';
import {
  deleteScheduleOfWorkflow,
  getScheduleOfWorkflow,
  upsertSchedule,
} from '../queries/schedule-queries.js';
import {
  insertWorkflow,
  insertWorkflowEdges,
  insertWorkflowTasks,
  insertWorkflowVersion,
  lockWorkflowByName,
  setCurrentVersion,
} from '../queries/workflow-queries.js';
import type { ScheduleDefinition, WorkflowDefinition } from './definition-types.js';

/**
 * Writes compiled definitions in ONE transaction: all are applied or none. A definition whose
 * canonical form is unchanged is a no-op; a changed one becomes a new version (runs record the
 * version they ran; old versions stay). The schedule row keeps its id across versions and keeps
 * its pending next_fire_time when cron, time zone and bounds did not change.
 */

export interface ApplyResult {
  name: string;
  version: number;
  status: 'created' | 'updated' | 'unchanged';
}

/** Canonical JSON: keys sorted, so key order in the file does not make a new version. */
function canonical(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonical).join(',')}]`;
  if (value !== null && typeof value === 'object') {
    const entries = Object.entries(value as Record<string, unknown>)
      .filter(([, v]) => v !== undefined)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonical(v)}`).join(',')}}`;
  }
  return JSON.stringify(value);
}

export function definitionDigest(def: WorkflowDefinition): string {
  return createHash('sha256').update(canonical(def)).digest('hex');
}

/** First fire time strictly after `nowMs` (bounded by start/end), or null when there is none. */
export function firstFireTime(s: ScheduleDefinition, nowMs: number): number | null {
  return new CronSchedule(s.cron, {
    timezone: s.timezone,
    startAt: s.startAt ?? undefined,
    endAt: s.endAt ?? undefined,
  }).next(nowMs);
}

export async function applyDefinitions(
  pool: pg.Pool,
  defs: WorkflowDefinition[],
  opts: { nowMs?: number } = {},
): Promise<ApplyResult[]> {
  const nowMs = opts.nowMs ?? Date.now();
  return withTransaction(pool, async (client) => {
    const results: ApplyResult[] = [];
    // Sorted by name so two concurrent applies lock rows in the same order (no deadlock).
    for (const def of [...defs].sort((a, b) => (a.name < b.name ? -1 : 1))) {
      const digest = definitionDigest(def);
      let head = await lockWorkflowByName(client, def.name);
      let version = 1;
      let workflowId: number;
      let status: ApplyResult['status'] = 'created';
      if (head === null) {
        const id = await insertWorkflow(client, def.name);
        if (id === null) {
          // Created by a concurrent apply after our lookup: lock it now and treat as an update.
          head = await lockWorkflowByName(client, def.name);
          if (head === null) throw new Error(`workflow ${def.name} vanished during apply`);
        } else {
          workflowId = id;
        }
      }
      if (head !== null) {
        if (head.digest === digest) {
          results.push({ name: def.name, version: head.currentVersion, status: 'unchanged' });
          continue;
        }
        workflowId = head.id;
        version = head.currentVersion + 1;
        status = 'updated';
      }
      const wid = workflowId!;
      await insertWorkflowVersion(client, { workflowId: wid, version, definition: def, digest });
      await insertWorkflowTasks(
        client,
        wid,
        version,
        def.tasks.map((t) => ({ name: t.name, type: t.type, spec: t })),
      );
      await insertWorkflowEdges(
        client,
        wid,
        version,
        def.tasks.flatMap((t) => t.dependsOn.map((d) => ({ from: d, to: t.name }))),
      );
      if (status === 'updated') await setCurrentVersion(client, wid, version);
      if (def.schedule === null) {
        await deleteScheduleOfWorkflow(client, wid);
      } else {
        const s = def.schedule;
        const old = status === 'updated' ? await getScheduleOfWorkflow(client, wid) : null;
        const sameTiming =
          old !== null &&
          old.cron === s.cron &&
          old.timezone === s.timezone &&
          old.startAt === s.startAt &&
          old.endAt === s.endAt &&
          old.paused === s.paused;
        await upsertSchedule(
          client,
          wid,
          {
            cron: s.cron,
            timezone: s.timezone,
            misfire: s.misfire,
            misfireThresholdMs: s.misfireThresholdMs,
            maxCatchUp: s.maxCatchUp,
            concurrency: s.concurrency,
            startAt: s.startAt,
            endAt: s.endAt,
            paused: s.paused,
            nextFireTime: firstFireTime(s, nowMs),
          },
          sameTiming,
        );
      }
      results.push({ name: def.name, version, status });
    }
    return results;
  });
}
