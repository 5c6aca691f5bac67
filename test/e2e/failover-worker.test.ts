// A dead worker's task is re-run elsewhere. Kill -9 of the worker running a long shell task:
// after the session timeout and the failover delay, the attempt is failed over, the task runs again on another
// worker, and the FAILOVER_FINISH_NODES record names the dead incarnation.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { FailoverRecords, RegistryPaths, ZkSession } from '@sched/registry';
import { eventually } from '@sched/testkit';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { TestCluster } from './cluster.js';
import { ctlJson } from './ctl-helpers.js';

let cluster: TestCluster;

beforeAll(async () => {
  cluster = await TestCluster.create();
  await cluster.startMaster();
});

afterAll(async () => {
  await cluster?.stop();
});

test('kill -9 of a busy worker: its attempt is failed over and the task runs again on another worker', async () => {
  const victim = await cluster.startWorker();
  const marks = join(cluster.dataRoot, 'marks.log');
  await cluster.apply({
    name: 'long-task',
    tasks: [
      {
        name: 'work',
        type: 'shell',
        routing: 'first',
        command: `echo "start $SCHED_ATTEMPT $(date +%s%3N)" >> ${marks}; sleep 6; echo "end $SCHED_ATTEMPT $(date +%s%3N)" >> ${marks}`,
      },
    ],
  });
  await cluster.trigger('long-task');
  await eventually(
    () => {
      if (!readFileSync(marks, 'utf8').includes('start 1')) throw new Error('task not started');
    },
    { timeoutMs: 30_000 },
  ).catch(() => {
    throw new Error(`task did not start\n${cluster.output()}`);
  });
  // A second worker joins only now, so the first attempt surely ran on the victim.
  const survivor = await cluster.startWorker();
  const killedAt = Date.now();
  await victim.child.kill9();

  const attempts = await eventually(
    async () => {
      const rows = await cluster.query<{
        attempt: number;
        state: string;
        worker_key: string;
        error: string | null;
      }>(`SELECT attempt, state, worker_key, error FROM task_attempts ORDER BY attempt`);
      if (rows.length < 2 || rows[1]?.state !== 'succeeded')
        throw new Error(`not re-run yet: ${JSON.stringify(rows)}`);
      return rows;
    },
    { timeoutMs: 60_000, intervalMs: 250 },
  ).catch((err) => {
    throw new Error(`${(err as Error).message}\n${cluster.output()}`);
  });
  expect(attempts[0]).toMatchObject({ attempt: 1, state: 'failed-over', worker_key: victim.key });
  expect(attempts[0]?.error).toContain('was lost');
  expect(attempts[1]).toMatchObject({ attempt: 2, state: 'succeeded', worker_key: survivor.key });
  expect(attempts).toHaveLength(2);

  const [run] = await cluster.query<{ state: string }>(`SELECT state FROM runs`);
  expect(run?.state).toBe('succeeded');

  // The record: address, startTime, pid, failedOverAt, by (the leader), counts.
  const session = await ZkSession.connect({
    connectString: cluster.zkChrooted,
    auth: cluster.zkAuth,
    sessionTimeoutMs: 4_000,
  });
  try {
    const records = new FailoverRecords(session, new RegistryPaths('/sched'));
    const record = await records.read('worker', victim.key);
    const [host, port] = victim.address.split(':');
    expect(record).toMatchObject({
      role: 'worker',
      address: `${host}:${port}`,
      startTime: Number(victim.key.split('_')[1]),
      pid: victim.child.pid,
      by: cluster.masters[0]?.key,
      tasks: 1,
      runs: 0,
    });
    const failedOverAt = Date.parse(record?.failedOverAt ?? '');
    // The server expires the session a session timeout (4 s) after it last heard the worker, which
    // pinged at least every third of it, so no earlier than 2/3 × 4 s after the kill; the leader
    // then waits the failover delay (3 s).
    expect(failedOverAt - killedAt).toBeGreaterThanOrEqual((4_000 * 2) / 3 + 3_000 - 250);
  } finally {
    await session.close();
  }

  // What the operator sees: `sched-ctl failover list --json` (the shape in docs/cli.md).
  const listed = await ctlJson<
    { role: string; address: string; startTime: number; failedOverAt: string; by: string }[]
  >(cluster, ['failover', 'list']);
  expect(listed).toEqual([
    expect.objectContaining({
      role: 'worker',
      address: victim.address,
      startTime: Number(victim.key.split('_')[1]),
      by: cluster.masters[0]?.key,
    }),
  ]);
  expect(Number.isNaN(Date.parse(listed[0]?.failedOverAt ?? ''))).toBe(false);
});
