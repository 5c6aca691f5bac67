import type { Db } from '../db.js';

/**
 * Claims up to `limit` manual-trigger commands and creates their runs in ONE statement (run in
 * the caller's transaction): the claim (DELETE … RETURNING, skipping rows another master is
 * claiming) and the insert commit together, so a trigger is never lost and never run twice —
 * the same guarantee as `claimNextCommand`, at a few hundred commands per round trip.
 */
export async function claimTriggerCommands(
  db: Db,
  owner: string,
  limit: number,
): Promise<
  { commandId: number; runId: number; workflowId: number; version: number; params: Record<string, string> }[]
> {
  const { rows } = await db.query<{
    command_id: number;
    id: number;
    workflow_id: number;
    workflow_version: number;
    params: Record<string, string> | null;
  }>(
    `WITH claimed AS (
       DELETE FROM commands WHERE id IN (
         SELECT id FROM commands WHERE kind = 'trigger' ORDER BY id LIMIT $2 FOR UPDATE SKIP LOCKED
       )
       RETURNING id, workflow_id, params
     )
     INSERT INTO runs (workflow_id, workflow_version, fire_time, trigger, owner, params, command_id)
     SELECT c.workflow_id, w.current_version, NULL, 'manual', $1, c.params, c.id
       FROM claimed c JOIN workflows w ON w.id = c.workflow_id
      ORDER BY c.id
     RETURNING command_id, id, workflow_id, workflow_version, params`,
    [owner, limit],
  );
  return rows.map((r) => ({
    commandId: r.command_id,
    runId: r.id,
    workflowId: r.workflow_id,
    version: r.workflow_version,
    params: r.params ?? {},
  }));
}
