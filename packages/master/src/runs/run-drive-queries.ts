import type { AttemptState, Db, WorkflowDefinition } from '@sched/store';

/**
 * The run driver's statements, one named operation each, all batched over many runs and all
 * fenced on `owner = $me`: a master that lost a run (failover re-assigned it) changes nothing.
 */

export interface DriveRun {
  id: number;
  workflowId: number;
  version: number;
  fireTime: Date | null;
  state: 'pending' | 'running';
  params: Record<string, string>;
  cancelRequested: boolean;
  /**
   * The definition's workflow-level `params` (its declared parameters with their defaults), set
   * when the definition is loaded (`RunPlans.load`): a task sees them, overridden by the run's
   * own params, overridden by the task's.
   */
  workflowParams?: Record<string, string>;
}

export interface DriveAttempt {
  id: number;
  runId: number;
  taskName: string;
  attempt: number;
  shardIndex: number;
  shardTotal: number;
  state: AttemptState;
  workerAddress: string | null;
  workerKey: string | null;
  /** czxid of the worker registration it was dispatched to; null when not known. */
  workerCzxid: bigint | null;
  /** Times it has been assigned to a worker (`dispatch_seq`); sent with every dispatch and revoke. */
  dispatchSeq: number;
  endedAtMs: number | null;
  /**
   * How long ago (ms, by the database's clock) it was last assigned to its worker
   * (`dispatched_at`); null when it has no worker. The driver's dispatch timeout reads it.
   */
  dispatchedAgoMs: number | null;
}

/** Ids of every active, unqueued run this master owns (start-up and the periodic sweep). */
export async function listOwnedActiveRuns(db: Db, owner: string): Promise<number[]> {
  const { rows } = await db.query<{ id: number }>(
    `SELECT id FROM runs WHERE owner = $1 AND state IN ('pending', 'running') AND NOT queued ORDER BY id`,
    [owner],
  );
  return rows.map((r) => r.id);
}

export async function loadRunsToDrive(db: Db, owner: string, ids: number[]): Promise<DriveRun[]> {
  const { rows } = await db.query(
    `SELECT id, workflow_id, workflow_version, fire_time, state, params, cancel_requested_at IS NOT NULL AS cancel
       FROM runs WHERE id = ANY($1::bigint[]) AND owner = $2 AND state IN ('pending', 'running') AND NOT queued`,
    [ids, owner],
  );
  return rows.map((r) => ({
    id: r.id,
    workflowId: r.workflow_id,
    version: r.workflow_version,
    fireTime: r.fire_time,
    state: r.state,
    params: r.params ?? {},
    cancelRequested: r.cancel,
  }));
}

export async function loadAttemptsOfRuns(db: Db, runIds: number[]): Promise<DriveAttempt[]> {
  const { rows } = await db.query(
    `SELECT id, run_id, task_name, attempt, shard_index, shard_total, state, worker_address, worker_key,
            worker_czxid::text AS worker_czxid, dispatch_seq, (extract(epoch FROM ended_at) * 1000)::float8 AS ended_ms,
            (extract(epoch FROM clock_timestamp() - dispatched_at) * 1000)::float8 AS dispatched_ago_ms
       FROM task_attempts WHERE run_id = ANY($1::bigint[]) ORDER BY run_id, task_name, shard_index, attempt`,
    [runIds],
  );
  return rows.map((r) => ({
    id: r.id,
    runId: r.run_id,
    taskName: r.task_name,
    attempt: r.attempt,
    shardIndex: r.shard_index,
    shardTotal: r.shard_total,
    state: r.state,
    workerAddress: r.worker_address,
    workerKey: r.worker_key,
    workerCzxid: r.worker_czxid === null ? null : BigInt(r.worker_czxid),
    dispatchSeq: r.dispatch_seq,
    endedAtMs: r.ended_ms === null ? null : Math.round(r.ended_ms),
    dispatchedAgoMs: r.dispatched_ago_ms === null ? null : Math.round(r.dispatched_ago_ms),
  }));
}

export async function loadDefinitions(
  db: Db,
  keys: { workflowId: number; version: number }[],
): Promise<Map<string, WorkflowDefinition>> {
  const { rows } = await db.query(
    `SELECT workflow_id, version, definition FROM workflow_versions
      WHERE (workflow_id, version) IN (SELECT * FROM unnest($1::bigint[], $2::int[]))`,
    [keys.map((k) => k.workflowId), keys.map((k) => k.version)],
  );
  return new Map(
    rows.map((r) => [definitionKey(r.workflow_id, r.version), r.definition as WorkflowDefinition]),
  );
}

export function definitionKey(workflowId: number, version: number): string {
  return `${workflowId}@${version}`;
}

/**
 * A worker incarnation chosen for an attempt. `czxid` is that of the registration znode the
 * master chose it from (null when not known): the leader's failover of the key takes over only
 * attempts of registrations it knows are gone, so one dispatched to a newer registration of the
 * same key (the worker came back with a new session) is not failed over under it.
 */
export interface DispatchTarget {
  address: string;
  startTime: number;
  key: string;
  czxid: bigint | null;
}

export interface NewDispatch {
  runId: number;
  taskName: string;
  attempt: number;
  shardIndex: number;
  shardTotal: number;
  /** null = no worker could be chosen now: the attempt is created `pending` and retried. */
  worker: DispatchTarget | null;
}

/**
 * Persists the dispatch intent before anything is sent (docs/design.md#runs): one row per attempt,
 * `dispatched` with the chosen worker incarnation and registration (or `pending` without one). Idempotent on
 * (run, task, shard, attempt); only for runs this master still owns. Returns the created rows.
 */
export async function insertAttempts(
  db: Db,
  owner: string,
  list: NewDispatch[],
): Promise<
  { id: number; runId: number; taskName: string; shardIndex: number; attempt: number; dispatchSeq: number }[]
> {
  if (list.length === 0) return [];
  const { rows } = await db.query(
    `INSERT INTO task_attempts (run_id, task_name, attempt, shard_index, shard_total, state,
                                worker_address, worker_start_time, worker_key, worker_czxid, dispatched_at,
                                dispatch_seq)
     SELECT n.run_id, n.task_name, n.attempt, n.shard_index, n.shard_total,
            CASE WHEN n.worker_key IS NULL THEN 'pending' ELSE 'dispatched' END,
            n.worker_address, n.worker_start_time, n.worker_key, n.worker_czxid,
            -- (a pre-staged dispatch is inserted before its run's fire time and committed at it)
            CASE WHEN n.worker_key IS NULL THEN NULL ELSE greatest(clock_timestamp(), r.fire_time) END,
            CASE WHEN n.worker_key IS NULL THEN 0 ELSE 1 END
       FROM unnest($2::bigint[], $3::text[], $4::int[], $5::int[], $6::int[], $7::text[], $8::bigint[], $9::text[],
                   $10::bigint[])
            AS n(run_id, task_name, attempt, shard_index, shard_total, worker_address, worker_start_time, worker_key,
                 worker_czxid)
       JOIN runs r ON r.id = n.run_id AND r.owner = $1 AND r.state IN ('pending', 'running')
     ON CONFLICT (run_id, task_name, shard_index, attempt) DO NOTHING
     RETURNING id, run_id, task_name, shard_index, attempt, dispatch_seq`,
    [
      owner,
      list.map((d) => d.runId),
      list.map((d) => d.taskName),
      list.map((d) => d.attempt),
      list.map((d) => d.shardIndex),
      list.map((d) => d.shardTotal),
      list.map((d) => d.worker?.address ?? null),
      list.map((d) => d.worker?.startTime ?? null),
      list.map((d) => d.worker?.key ?? null),
      list.map((d) => czxidParam(d.worker?.czxid)),
    ],
  );
  return rows.map((r) => ({
    id: r.id,
    runId: r.run_id,
    taskName: r.task_name,
    shardIndex: r.shard_index,
    attempt: r.attempt,
    dispatchSeq: r.dispatch_seq,
  }));
}

/**
 * Moves an attempt that a worker refused (or that could not be delivered) to another worker, or
 * back to `pending` (worker null); also moves a `dispatched` attempt to the current registration
 * of its worker before it is sent again. Fenced on the worker it was given to: a report that
 * already moved it on (the worker did start it after all) wins, and so does the leader's
 * failover (the row lock orders the two: after a move to a newer registration, that failover
 * leaves the attempt alone; after the failover, the move finds it `failed-over` and does nothing).
 */
export async function reassignAttempt(
  db: Db,
  id: number,
  fromWorkerKey: string | null,
  to: DispatchTarget | null,
  fence: {
    /** Only if the row is still at this `dispatch_seq` (the assignment the caller knows). */
    fromSeq?: number;
    /** Only if this master still owns the attempt's run (a deposed owner moves nothing). */
    owner?: string;
  } = {},
): Promise<number | null> {
  const { rows } = await db.query<{ dispatch_seq: number }>(
    `UPDATE task_attempts
        SET state = CASE WHEN $3::text IS NULL THEN 'pending' ELSE 'dispatched' END,
            worker_key = $3, worker_address = $4, worker_start_time = $5, worker_czxid = $6::bigint,
            dispatched_at = CASE WHEN $3::text IS NULL THEN NULL ELSE clock_timestamp() END,
            dispatch_seq = dispatch_seq + 1
      WHERE id = $1 AND state IN ('pending', 'dispatched') AND worker_key IS NOT DISTINCT FROM $2
        AND ($7::int IS NULL OR dispatch_seq = $7)
        AND ($8::text IS NULL OR EXISTS (SELECT 1 FROM runs r WHERE r.id = task_attempts.run_id AND r.owner = $8))
      RETURNING dispatch_seq`,
    [
      id,
      fromWorkerKey,
      to?.key ?? null,
      to?.address ?? null,
      to?.startTime ?? null,
      czxidParam(to?.czxid),
      fence.fromSeq ?? null,
      fence.owner ?? null,
    ],
  );
  return rows[0]?.dispatch_seq ?? null;
}

/** Attempts still `dispatched` to `workerKey` at the given seq, of those asked (the rest moved on). */
export async function stillDispatched(
  db: Db,
  list: { id: number; workerKey: string; dispatchSeq: number }[],
): Promise<Set<number>> {
  if (list.length === 0) return new Set();
  const { rows } = await db.query<{ id: string }>(
    `SELECT a.id FROM task_attempts a
       JOIN unnest($1::bigint[], $2::text[], $3::int[]) AS q(id, worker_key, seq) ON q.id = a.id
      WHERE a.state = 'dispatched' AND a.worker_key = q.worker_key AND a.dispatch_seq = q.seq`,
    [list.map((x) => x.id), list.map((x) => x.workerKey), list.map((x) => x.dispatchSeq)],
  );
  return new Set(rows.map((r) => Number(r.id)));
}

/** A czxid as pg gets it: a decimal string (a JS bigint is not serialized by pg). */
function czxidParam(czxid: bigint | null | undefined): string | null {
  return czxid == null ? null : czxid.toString();
}

/**
 * Ends as `killed` attempts of cancelled runs that their worker revoked (it does not have them
 * and now refuses every copy up to that seq: they never start there). Fenced on the worker key
 * and seq the revoke named, on the row still being `dispatched`, and on this master owning the
 * run. Returns the ids it ended.
 */
export async function killRevokedAttempts(
  db: Db,
  owner: string,
  list: { id: number; workerKey: string; dispatchSeq: number }[],
): Promise<number[]> {
  if (list.length === 0) return [];
  const { rows } = await db.query<{ id: string }>(
    `UPDATE task_attempts a SET state = 'killed', ended_at = clock_timestamp(), error = 'run cancelled'
       FROM unnest($1::bigint[], $2::text[], $3::int[]) AS q(id, worker_key, seq)
      WHERE a.id = q.id AND a.state = 'dispatched' AND a.worker_key = q.worker_key AND a.dispatch_seq = q.seq
        AND EXISTS (SELECT 1 FROM runs r WHERE r.id = a.run_id AND r.owner = $4)
      RETURNING a.id`,
    [list.map((x) => x.id), list.map((x) => x.workerKey), list.map((x) => x.dispatchSeq), owner],
  );
  return rows.map((r) => Number(r.id));
}

/** Attempts of cancelled runs that never reached a worker end as killed. */
export async function killPendingAttempts(db: Db, runIds: number[]): Promise<void> {
  await db.query(
    `UPDATE task_attempts SET state = 'killed', ended_at = clock_timestamp(), error = 'run cancelled'
      WHERE run_id = ANY($1::bigint[]) AND state = 'pending'`,
    [runIds],
  );
}

export async function markRunsRunning(db: Db, owner: string, ids: number[]): Promise<void> {
  if (ids.length === 0) return;
  await db.query(
    `UPDATE runs SET state = 'running', started_at = coalesce(started_at, greatest(clock_timestamp(), fire_time))
      WHERE id = ANY($1::bigint[]) AND owner = $2 AND state = 'pending'`,
    [ids, owner],
  );
}

/**
 * Ends runs; returns the runs that this call ended, with their workflow ids (to release queued
 * runs). A run is `cancelled` only once none of its attempts is `pending`, `dispatched` or
 * `running` (docs/design.md#runs): one that still has one stays as it is (cancelling), so a queued
 * successor never overlaps an attempt whose kill is not confirmed.
 */
export async function finishRuns(
  db: Db,
  owner: string,
  list: { id: number; state: 'succeeded' | 'failed' | 'cancelled' }[],
): Promise<{ id: number; workflowId: number }[]> {
  if (list.length === 0) return [];
  const { rows } = await db.query<{ id: string; workflow_id: number }>(
    `UPDATE runs r SET state = n.state, ended_at = clock_timestamp(), started_at = coalesce(r.started_at, clock_timestamp())
       FROM unnest($1::bigint[], $2::text[]) AS n(id, state)
      WHERE r.id = n.id AND r.owner = $3 AND r.state IN ('pending', 'running')
        AND (n.state <> 'cancelled' OR NOT EXISTS (
              SELECT 1 FROM task_attempts a WHERE a.run_id = r.id AND a.state IN ('pending', 'dispatched', 'running')))
      RETURNING r.id, r.workflow_id`,
    [list.map((r) => r.id), list.map((r) => r.state), owner],
  );
  return rows.map((r) => ({ id: Number(r.id), workflowId: r.workflow_id }));
}
