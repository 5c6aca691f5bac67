// A graceful stop is not a failover: SIGTERM of a busy worker. It drains: advertises DRAINING,
// refuses new work (a run triggered meanwhile goes to another worker), lets its running task
// finish, delivers the report, deletes its znode and exits 0. The leader sees the znode go, waits the failover
// delay and finds a graceful stop: no failover, no record, no failed-over attempt.
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { FailoverRecords, RegistryPaths, ZkSession } from '@sched/registry';
import { eventually } from '@sched/testkit';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { TestCluster } from './cluster.js';

const TASK_SECONDS = 10;

let cluster: TestCluster;

beforeAll(async () => {
  cluster = await TestCluster.create();
});

afterAll(async () => {
  await cluster?.stop();
});

interface Mark {
  kind: string;
  attempt: number;
  run: number;
  ms: number;
}

function readMarks(file: string): Mark[] {
  if (!existsSync(file)) return [];
  return readFileSync(file, 'utf8')
    .split('\n')
    .map((l) => l.trim().split(/\s+/))
    .filter((p) => p.length === 4)
    .map(([kind, attempt, run, ns]) => ({
      kind: kind as string,
      attempt: Number(attempt),
      run: Number(run),
      ms: Number(BigInt(ns as string) / 1_000_000n),
    }));
}

async function waitFor<T>(what: string, fn: () => T | Promise<T>, timeoutMs = 60_000): Promise<T> {
  return eventually(fn, { timeoutMs, intervalMs: 100 }).catch((err) => {
    throw new Error(`${what}: ${(err as Error).message}\n${cluster.output()}`);
  });
}

test('SIGTERM of a busy worker: it finishes its task, deregisters and exits 0; nothing is failed over', async () => {
  const master = await cluster.startMaster();
  const busy = await cluster.startWorker();
  const marks = join(cluster.dataRoot, 'marks.log');
  await cluster.apply({
    name: 'drain-task',
    tasks: [
      {
        name: 'work',
        type: 'shell',
        routing: 'first',
        command: [
          `echo "start $SCHED_ATTEMPT $SCHED_RUN_ID $(date +%s%N)" >> ${marks}`,
          `sleep ${TASK_SECONDS}`,
          `echo "end $SCHED_ATTEMPT $SCHED_RUN_ID $(date +%s%N)" >> ${marks}`,
        ].join('\n'),
      },
    ],
  });
  await cluster.trigger('drain-task');
  const started = await waitFor('the task did not start', () => {
    const m = readMarks(marks).find((x) => x.kind === 'start');
    if (!m) throw new Error('no start line');
    return m;
  });
  const other = await cluster.startWorker();

  const termAt = Date.now();
  busy.child.signal('SIGTERM', 'leader');
  await waitFor('no DRAINING heartbeat', () => busy.child.waitForOutput(/stopping gracefully/, 100));
  // New work while it drains goes elsewhere.
  await cluster.trigger('drain-task');

  const exit = await Promise.race([
    busy.child.exited,
    new Promise<never>((_, reject) =>
      setTimeout(() => reject(new Error(`the worker did not exit\n${cluster.output()}`)), 60_000),
    ),
  ]);
  const exitedAt = Date.now();
  expect(exit).toEqual({ code: 0, signal: null });
  expect(busy.child.output()).not.toMatch(/self-fencing|was failed over|killing the task/);

  // It waited for the task: the task ended normally, before the daemon exited.
  const firstRun = readMarks(marks).filter((m) => m.run === started.run);
  const end = firstRun.find((m) => m.kind === 'end' && m.attempt === 1);
  expect(end, 'the running task finished').toBeDefined();
  expect((end as Mark).ms - started.ms).toBeGreaterThanOrEqual(TASK_SECONDS * 1_000 - 200);
  expect((end as Mark).ms).toBeLessThanOrEqual(exitedAt);
  expect((end as Mark).ms, 'the task was still running when SIGTERM came').toBeGreaterThan(termAt);
  expect(firstRun.filter((m) => m.kind === 'start')).toHaveLength(1);

  // The leader saw the znode go, waited, and found a graceful stop.
  await waitFor('the leader did not judge the stop graceful', () =>
    master.child.waitForOutput(
      new RegExp(`worker ${busy.key} deregistered gracefully; nothing to fail over`),
      100,
    ),
  );
  expect(master.child.output()).not.toMatch(new RegExp(`failed over worker ${busy.key}`));

  const runs = await waitFor('runs did not both succeed', async () => {
    const r = await cluster.query<{ id: number; state: string }>(`SELECT id, state FROM runs ORDER BY id`);
    if (r.length !== 2 || r.some((x) => x.state !== 'succeeded')) throw new Error(JSON.stringify(r));
    return r;
  });
  const attempts = await cluster.query<{
    run_id: number;
    attempt: number;
    state: string;
    worker_key: string;
  }>(`SELECT run_id, attempt, state, worker_key FROM task_attempts ORDER BY run_id, attempt`);
  expect(attempts).toEqual([
    { run_id: runs[0]?.id, attempt: 1, state: 'succeeded', worker_key: busy.key },
    { run_id: runs[1]?.id, attempt: 1, state: 'succeeded', worker_key: other.key },
  ]);
  expect(await cluster.query(`SELECT key FROM failovers`)).toEqual([]);
  const session = await ZkSession.connect({
    connectString: cluster.zkChrooted,
    auth: cluster.zkAuth,
    sessionTimeoutMs: 4_000,
  });
  try {
    const paths = new RegistryPaths('/sched');
    expect(await new FailoverRecords(session, paths).read('worker', busy.key)).toBeUndefined();
    expect(await session.exists(paths.member('worker', busy.key))).toBeUndefined();
  } finally {
    await session.close();
  }
  console.log(
    `SIGTERM at ${termAt - started.ms} ms into the task; task end ${(end as Mark).ms - termAt} ms, exit ${
      exitedAt - termAt
    } ms after SIGTERM`,
  );
}, 120_000);
