// Reads what the checker needs from the cluster's database (after healing and quiescing).
import type { AttemptFacts, MisfirePolicy, RunFacts, ScheduleFacts } from './checker.js';
import type { TestCluster } from './test-cluster.js';

export interface DatabaseFacts {
  schedules: ScheduleFacts[];
  runs: RunFacts[];
  attempts: AttemptFacts[];
  failovers: { role: string; key: string; tasks: number; runs: number; recorded: boolean }[];
  /** Errors of attempts that did not succeed, for the summary (grouped, counted). */
  attemptErrors: { state: string; error: string; count: number }[];
}

export async function readDatabaseFacts(cluster: TestCluster, periodMs = 1000): Promise<DatabaseFacts> {
  const schedules = await cluster.query<{ id: string; workflow: string; misfire: MisfirePolicy }>(
    `SELECT s.id, w.name AS workflow, s.misfire FROM schedules s JOIN workflows w ON w.id = s.workflow_id ORDER BY s.id`,
  );
  const runs = await cluster.query<{
    id: string;
    workflow: string;
    state: string;
    trigger: string;
    command_id: string | null;
    schedule_id: string | null;
    fire_ms: number | null;
  }>(
    `SELECT r.id, w.name AS workflow, r.state, r.trigger, r.command_id, r.schedule_id,
            (extract(epoch FROM r.fire_time) * 1000)::float8 AS fire_ms
       FROM runs r JOIN workflows w ON w.id = r.workflow_id ORDER BY r.id`,
  );
  const attempts = await cluster.query<{
    run_id: string;
    task_name: string;
    attempt: number;
    shard_index: number;
    state: string;
    worker_key: string | null;
  }>(`SELECT run_id, task_name, attempt, shard_index, state, worker_key FROM task_attempts ORDER BY id`);
  const failovers = await cluster.query<{
    role: string;
    key: string;
    tasks: number;
    runs: number;
    recorded: boolean;
  }>(
    `SELECT role, key, tasks, runs, recorded_at IS NOT NULL AS recorded FROM failovers ORDER BY failed_over_at`,
  );
  const attemptErrors = await cluster.query<{ state: string; error: string; count: number }>(
    `SELECT state, coalesce(left(error, 160), '(no error text)') AS error, count(*)::int AS count
       FROM task_attempts WHERE state <> 'succeeded' GROUP BY 1, 2 ORDER BY 3 DESC LIMIT 10`,
  );
  return {
    schedules: schedules.map((s) => ({
      scheduleId: Number(s.id),
      workflow: s.workflow,
      misfire: s.misfire,
      periodMs,
      runs: runs
        .filter((r) => r.schedule_id !== null && Number(r.schedule_id) === Number(s.id) && r.fire_ms !== null)
        .map((r) => ({
          fireTimeMs: Math.round(r.fire_ms as number),
          trigger: r.trigger,
          runId: Number(r.id),
        })),
    })),
    runs: runs.map((r) => ({
      id: Number(r.id),
      workflow: r.workflow,
      state: r.state,
      trigger: r.trigger,
      commandId: r.command_id === null ? null : Number(r.command_id),
    })),
    attempts: attempts.map((a) => ({
      runId: Number(a.run_id),
      task: a.task_name,
      attempt: a.attempt,
      shardIndex: a.shard_index,
      state: a.state,
      workerKey: a.worker_key,
    })),
    failovers,
    attemptErrors,
  };
}

/** Runs and attempts not yet terminal (what quiescing waits for). */
export async function countActive(cluster: TestCluster): Promise<{ runs: number; attempts: number }> {
  const [row] = await cluster.query<{ runs: number; attempts: number }>(
    `SELECT (SELECT count(*) FROM runs WHERE state IN ('pending', 'running'))::int AS runs,
            (SELECT count(*) FROM task_attempts WHERE state IN ('pending', 'dispatched', 'running'))::int AS attempts`,
  );
  return row ?? { runs: 0, attempts: 0 };
}
