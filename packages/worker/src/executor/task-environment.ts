import { secretEnvironmentNames } from '@sched/core';
import type { AttemptRequest } from '@sched/protocol';

/**
 * Variables of the worker's own environment that must never reach task code: the cluster secret
 * would let any task impersonate a master; the others are credentials the worker does not even use;
 * with them the `_FILE` variants and `CREDENTIALS_DIRECTORY`, which say where the secrets are. (The
 * `sched-worker` command also deletes them from its own environment once configured.)
 */
const WITHHELD = [
  ...new Set(['SCHED_CLUSTER_SECRET', 'SCHED_DB_URL', 'SCHED_ZK_AUTH', ...secretEnvironmentNames()]),
];

/**
 * The environment of a task process (docs/design.md#contract, docs/tasks.md#environment): the
 * worker's environment minus secrets, then the task's params, then the SCHED_* variables (params
 * cannot override those; the request validator refuses SCHED_* param names).
 */
export function taskEnvironment(
  req: AttemptRequest,
  base: Readonly<Record<string, string | undefined>> = process.env,
): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(base)) {
    if (v !== undefined && !WITHHELD.includes(k)) env[k] = v;
  }
  Object.assign(env, req.params);
  env.SCHED_RUN_ID = req.runId;
  env.SCHED_TASK_NAME = req.taskName;
  env.SCHED_ATTEMPT = String(req.attempt);
  env.SCHED_ATTEMPT_ID = req.attemptId;
  env.SCHED_FIRE_TIME = req.fireTime ?? '';
  env.SCHED_SHARD_INDEX = String(req.shardIndex);
  env.SCHED_SHARD_TOTAL = String(req.shardTotal);
  env.SCHED_IDEMPOTENCY_KEY = req.idempotencyKey;
  return env;
}
