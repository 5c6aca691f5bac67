// Re-run a run from its failed tasks, or all of it, through the real sched-ctl.
// A DAG extract → transform → load where `transform` fails the first time: re-running from the
// failed tasks carries `extract` over (it does not run again) and runs `transform` and `load`;
// re-running all runs every task again.
import { join } from 'node:path';
import { eventually } from '@sched/testkit';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { checkedFetch } from './api-contract.js';
import { TestCluster } from './cluster.js';
import { ctlEnv, ctlJson, runCtl } from './ctl-helpers.js';

let cluster: TestCluster;
let marker: string;

beforeAll(async () => {
  cluster = await TestCluster.create();
  await cluster.startMaster();
  await cluster.startWorker();
  marker = join(cluster.dataRoot, 'transform-failed-once');
  await cluster.apply({
    name: 'etl',
    tasks: [
      { name: 'extract', type: 'shell', command: 'echo extracted' },
      {
        name: 'transform',
        type: 'shell',
        // Fails on its first run only.
        command: `if [ -f ${marker} ]; then echo transformed; else touch ${marker}; exit 4; fi`,
        dependsOn: ['extract'],
      },
      { name: 'load', type: 'shell', command: 'echo loaded', dependsOn: ['transform'] },
    ],
  });
}, 120_000);

afterAll(async () => {
  await cluster?.stop();
});

interface RunShow {
  id: number;
  state: string;
  tasks: {
    name: string;
    state: string;
    attempts: { attempt: number; worker: string | null; state: string }[];
  }[];
}

async function ended(id: number): Promise<RunShow> {
  return eventually(
    async () => {
      const run = await ctlJson<RunShow>(cluster, ['run', 'show', String(id)]);
      if (run.state === 'pending' || run.state === 'running') throw new Error(`run ${id} is ${run.state}`);
      return run;
    },
    { timeoutMs: 60_000, intervalMs: 500 },
  );
}

test('rerun --from-failed runs only what did not succeed; a plain rerun runs everything', {
  timeout: 240_000,
}, async () => {
  const trigger = await ctlJson<{ runId: number }>(cluster, ['workflow', 'trigger', 'etl']);
  const first = await ended(trigger.runId);
  expect(first.state).toBe('failed');
  const task = (run: RunShow, name: string) => run.tasks.find((t) => t.name === name);
  expect(task(first, 'extract')?.state).toBe('succeeded');
  expect(task(first, 'transform')?.state).toBe('failed');
  expect(task(first, 'load')?.attempts ?? []).toEqual([]);

  const again = await ctlJson<{ runId: number; rerunOf: number }>(cluster, [
    'run',
    'rerun',
    String(first.id),
    '--from-failed',
  ]);
  expect(again.rerunOf).toBe(first.id);
  const second = await ended(again.runId);
  expect(second.state).toBe('succeeded');
  // extract was carried over: one succeeded attempt that no worker ran.
  expect(task(second, 'extract')?.attempts).toEqual([
    expect.objectContaining({ attempt: 1, worker: null, state: 'succeeded' }),
  ]);
  // transform and load ran on the worker.
  for (const name of ['transform', 'load']) {
    expect(task(second, name)?.attempts).toEqual([
      expect.objectContaining({ attempt: 1, worker: cluster.workers[0]?.address, state: 'succeeded' }),
    ]);
  }
  const [{ n } = { n: -1 }] = await cluster.query<{ n: number }>(
    `SELECT count(*)::int AS n FROM task_attempts WHERE run_id = $1 AND task_name = 'extract' AND worker_key IS NOT NULL`,
    [second.id],
  );
  expect(n).toBe(0);

  const all = await ctlJson<{ runId: number }>(cluster, ['run', 'rerun', String(second.id)]);
  const third = await ended(all.runId);
  expect(third.state).toBe('succeeded');
  for (const name of ['extract', 'transform', 'load']) {
    expect(task(third, name)?.attempts).toEqual([
      expect.objectContaining({ attempt: 1, worker: cluster.workers[0]?.address, state: 'succeeded' }),
    ]);
  }

  // A bad value is refused with a clear message and changes nothing.
  const before = await cluster.query(`SELECT id FROM runs`);
  const { res: bad, text: badText } = await checkedFetch(
    `http://${cluster.masters[0]?.address}/v1/runs/${first.id}/rerun`,
    {
      method: 'POST',
      headers: { authorization: `Bearer ${cluster.secret}`, 'content-type': 'application/json' },
      body: JSON.stringify({ fromFailed: 'yes' }),
    },
  );
  expect(bad.status).toBe(400);
  expect(badText).toContain('fromFailed: expected true or false');
  expect(await cluster.query(`SELECT id FROM runs`)).toEqual(before);
  const help = await runCtl(['run', 'rerun', '--help'], { env: ctlEnv(cluster) });
  expect(help.stdout).toContain('--from-failed');
});
