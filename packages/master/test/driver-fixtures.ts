// Shared by the tests that drive runs against a real PostgreSQL: a worker as the run driver sees
// it, and a manual run owned by a given master.
import { parseIncarnationKey } from '@sched/core';
import { insertRuns } from '@sched/store';
import type pg from 'pg';
import type { RegisteredWorker } from '../src/runs/run-driver.js';

/** A live worker as the driver sees it: incarnation `key` (`host:port_startTime`) on registration `czxid`. */
export function workerView(key: string, czxid: bigint, capacity = 4): RegisteredWorker {
  const { address, startTime } = parseIncarnationKey(key);
  return {
    key,
    address,
    startTime,
    groups: ['default'],
    weight: 1,
    capacity,
    running: 0,
    state: 'NORMAL',
    cpu: 0,
    memory: 0,
    load: 0,
    czxid,
  };
}

/** A manual run of `workflowId` (its latest version), owned by `owner`. */
export async function newManualRun(pool: pg.Pool, workflowId: number, owner: string): Promise<number> {
  const [id] = await insertRuns(pool, [
    {
      workflowId,
      workflowVersion: null,
      fireTimeMs: null,
      trigger: 'manual',
      owner,
      params: {},
      commandId: null,
      rerunOf: null,
    },
  ]);
  return id as number;
}
