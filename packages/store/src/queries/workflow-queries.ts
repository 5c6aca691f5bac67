import type { Db } from '../db.js';

/** Named queries on workflows and their versions; one SQL statement each. */

export interface WorkflowHead {
  id: number;
  name: string;
  currentVersion: number;
  digest: string;
}

/** Locks the workflow row (FOR UPDATE) so concurrent applies of the same name serialise. */
export async function lockWorkflowByName(db: Db, name: string): Promise<WorkflowHead | null> {
  const { rows } = await db.query<{ id: number; name: string; current_version: number; digest: string }>(
    `SELECT w.id, w.name, w.current_version, v.digest
       FROM workflows w JOIN workflow_versions v ON v.workflow_id = w.id AND v.version = w.current_version
      WHERE w.name = $1
        FOR UPDATE OF w`,
    [name],
  );
  const r = rows[0];
  return r ? { id: r.id, name: r.name, currentVersion: r.current_version, digest: r.digest } : null;
}

/** Creates the workflow row at version 1; returns its id, or null when the name was taken meanwhile. */
export async function insertWorkflow(db: Db, name: string): Promise<number | null> {
  const { rows } = await db.query<{ id: number }>(
    `INSERT INTO workflows (name, current_version) VALUES ($1, 1) ON CONFLICT (name) DO NOTHING RETURNING id`,
    [name],
  );
  return rows[0]?.id ?? null;
}

export async function setCurrentVersion(db: Db, workflowId: number, version: number): Promise<void> {
  await db.query(`UPDATE workflows SET current_version = $2, updated_at = now() WHERE id = $1`, [
    workflowId,
    version,
  ]);
}

export async function insertWorkflowVersion(
  db: Db,
  v: { workflowId: number; version: number; definition: unknown; digest: string },
): Promise<void> {
  await db.query(
    `INSERT INTO workflow_versions (workflow_id, version, definition, digest) VALUES ($1, $2, $3, $4)`,
    [v.workflowId, v.version, JSON.stringify(v.definition), v.digest],
  );
}

/** Inserts every task of one version (arrays, one statement). */
export async function insertWorkflowTasks(
  db: Db,
  workflowId: number,
  version: number,
  tasks: { name: string; type: string; spec: unknown }[],
): Promise<void> {
  await db.query(
    `INSERT INTO workflow_tasks (workflow_id, version, name, position, type, spec)
     SELECT $1, $2, t.name, t.position, t.type, t.spec
       FROM unnest($3::text[], $4::int[], $5::text[], $6::jsonb[]) AS t(name, position, type, spec)`,
    [
      workflowId,
      version,
      tasks.map((t) => t.name),
      tasks.map((_, i) => i),
      tasks.map((t) => t.type),
      tasks.map((t) => JSON.stringify(t.spec)),
    ],
  );
}

export async function insertWorkflowEdges(
  db: Db,
  workflowId: number,
  version: number,
  edges: { from: string; to: string }[],
): Promise<void> {
  if (edges.length === 0) return;
  await db.query(
    `INSERT INTO workflow_edges (workflow_id, version, from_task, to_task)
     SELECT $1, $2, e.f, e.t FROM unnest($3::text[], $4::text[]) AS e(f, t)`,
    [workflowId, version, edges.map((e) => e.from), edges.map((e) => e.to)],
  );
}

export interface WorkflowSummary {
  id: number;
  name: string;
  currentVersion: number;
  definition: unknown;
  createdAt: Date;
  updatedAt: Date;
}

export async function getWorkflowByName(db: Db, name: string): Promise<WorkflowSummary | null> {
  const { rows } = await db.query(
    `SELECT w.id, w.name, w.current_version, v.definition, w.created_at, w.updated_at
       FROM workflows w JOIN workflow_versions v ON v.workflow_id = w.id AND v.version = w.current_version
      WHERE w.name = $1`,
    [name],
  );
  const r = rows[0];
  return r
    ? {
        id: r.id,
        name: r.name,
        currentVersion: r.current_version,
        definition: r.definition,
        createdAt: r.created_at,
        updatedAt: r.updated_at,
      }
    : null;
}

/** The definition of one version (what a run records and replays). */
export async function getWorkflowVersion(
  db: Db,
  workflowId: number,
  version: number,
): Promise<unknown | null> {
  const { rows } = await db.query(
    `SELECT definition FROM workflow_versions WHERE workflow_id = $1 AND version = $2`,
    [workflowId, version],
  );
  return rows[0]?.definition ?? null;
}

/** Deletes a workflow with its versions, schedule, runs and attempts. Returns whether it existed. */
export async function deleteWorkflowByName(db: Db, name: string): Promise<boolean> {
  const { rowCount } = await db.query(`DELETE FROM workflows WHERE name = $1`, [name]);
  return (rowCount ?? 0) > 0;
}
