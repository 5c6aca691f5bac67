import type { Db } from '../db.js';

/**
 * The durable command table: manual trigger (with params), re-run, backfill over a range. Any
 * master claims a command with DELETE … RETURNING inside the transaction that creates its run(s):
 * if that transaction fails, the command is back; it is never done twice.
 */

export type CommandKind = 'trigger' | 'rerun' | 'backfill';

export interface CommandRow {
  id: number;
  kind: CommandKind;
  workflowId: number | null;
  runId: number | null;
  params: Record<string, string>;
  rangeStartMs: number | null;
  rangeEndMs: number | null;
  requestedBy: string | null;
  /** rerun only: run again only the tasks that did not succeed. */
  fromFailed: boolean;
}

export interface NewCommand {
  kind: CommandKind;
  workflowId?: number | null;
  runId?: number | null;
  params?: Record<string, string>;
  rangeStartMs?: number | null;
  rangeEndMs?: number | null;
  requestedBy?: string | null;
  /** rerun only: run again only the tasks that did not succeed. @defaultValue false */
  fromFailed?: boolean;
}

const ms = (v: number | null | undefined) => (v === null || v === undefined ? null : new Date(v));

/** Queues a command and wakes masters listening on `sched_commands`. Returns the command id. */
export async function enqueueCommand(db: Db, c: NewCommand): Promise<number> {
  const { rows } = await db.query<{ id: number }>(
    `WITH c AS (
       INSERT INTO commands (kind, workflow_id, run_id, params, range_start, range_end, requested_by, from_failed)
       VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING id
     )
     SELECT id, pg_notify('sched_commands', id::text) FROM c`,
    [
      c.kind,
      c.workflowId ?? null,
      c.runId ?? null,
      JSON.stringify(c.params ?? {}),
      ms(c.rangeStartMs),
      ms(c.rangeEndMs),
      c.requestedBy ?? null,
      c.fromFailed ?? false,
    ],
  );
  return (rows[0] as { id: number }).id;
}

/** Claims the oldest unclaimed command (skipping ones another master is claiming). Use inside a transaction. */
export async function claimNextCommand(db: Db): Promise<CommandRow | null> {
  const { rows } = await db.query(
    `DELETE FROM commands WHERE id = (SELECT id FROM commands ORDER BY id LIMIT 1 FOR UPDATE SKIP LOCKED)
     RETURNING id, kind, workflow_id, run_id, params,
               (extract(epoch from range_start) * 1000)::bigint AS start_ms,
               (extract(epoch from range_end) * 1000)::bigint AS end_ms, requested_by, from_failed`,
  );
  const r = rows[0];
  return r
    ? {
        id: r.id,
        kind: r.kind,
        workflowId: r.workflow_id,
        runId: r.run_id,
        params: r.params,
        rangeStartMs: r.start_ms,
        rangeEndMs: r.end_ms,
        requestedBy: r.requested_by,
        fromFailed: r.from_failed,
      }
    : null;
}

/** Puts back the rest of a backfill (same id) after a chunk was done in the claiming transaction. */
export async function requeueBackfillRemainder(db: Db, c: CommandRow, nextStartMs: number): Promise<void> {
  await db.query(
    `INSERT INTO commands (id, kind, workflow_id, run_id, params, range_start, range_end, requested_by)
     VALUES ($1, 'backfill', $2, NULL, $3, $4, $5, $6)`,
    [c.id, c.workflowId, JSON.stringify(c.params), new Date(nextStartMs), ms(c.rangeEndMs), c.requestedBy],
  );
}

export async function countCommands(db: Db): Promise<number> {
  const { rows } = await db.query<{ n: number }>(`SELECT count(*)::int AS n FROM commands`);
  return rows[0]?.n ?? 0;
}
