// Issue 13 point 7, end to end with real daemons: an attempt whose result never reaches a master,
// on a worker that is alive and registered, does not stay `running` for ever — the master that
// owns its run asks the worker (docs/design.md#reconciliation) after the reconciler's silence
// threshold (60 s, DEFAULT_ATTEMPT_RECONCILER_OPTIONS) and applies the result the worker has. The
// worker's reports are lost by cutting its link to the master (a fault proxy on the worker →
// master path; master → worker and ZooKeeper keep working), as a spool that cannot be written
// followed by anything that loses the in-memory copy would. Before the fix the run stayed
// `running` for as long as the link was down.
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { eventually, sleep } from '@sched/testkit';
import { afterEach, expect, test } from 'vitest';
import { TestCluster } from './cluster.js';

let cluster: TestCluster | undefined;

afterEach(async () => {
  await cluster?.stop();
  cluster = undefined;
});

test('a result that cannot reach any master is applied once the master asks the worker', {
  timeout: 180_000,
}, async () => {
  const c = await TestCluster.create({ peerProxies: true });
  cluster = c;
  await c.reserveSlot('master', 'm');
  await c.reserveSlot('worker', 'w');
  const master = await c.startMaster({}, 'm');
  const worker = await c.startWorker({}, 'w');
  const gate = join(c.dataRoot, 'report-lost.gate');
  await c.apply({
    name: 'report-lost',
    tasks: [
      {
        name: 'only',
        type: 'shell',
        command: `while [ ! -e '${gate}' ]; do sleep 0.05; done; echo finished-unreported`,
      },
    ],
  });
  await c.trigger('report-lost');
  await eventually(
    async () => {
      const [a] = await c.query<{ state: string }>(`SELECT state FROM task_attempts`);
      expect(a?.state).toBe('running');
    },
    { timeoutMs: 30_000 },
  );
  // From now on nothing the worker sends reaches the master; the master still reaches the worker.
  const toMaster = worker.outboundProxies.get(master.slot);
  if (!toMaster) throw new Error('the worker has no proxy to the master');
  toMaster.setMode('down');
  writeFileSync(gate, '');
  await sleep(5_000);
  const [still] = await c.query<{ state: string }>(`SELECT state FROM runs`);
  expect(still?.state).toBe('running');

  await eventually(
    async () => {
      const [run] = await c.query<{ state: string }>(`SELECT state FROM runs`);
      expect(run?.state).toBe('succeeded');
    },
    { timeoutMs: 120_000, intervalMs: 500 },
  ).catch((err) => {
    throw new Error(`${(err as Error).message}\n${c.output()}`);
  });
  const attempts = await c.query<{ attempt: number; state: string; exit_code: number; log_tail: string }>(
    `SELECT attempt, state, exit_code, log_tail FROM task_attempts`,
  );
  expect(attempts.map((a) => [a.attempt, a.state, a.exit_code])).toEqual([[1, 'succeeded', 0]]);
  expect(attempts[0]?.log_tail).toContain('finished-unreported');
  expect(master.child.output()).toContain('no master heard of it');
  toMaster.setMode('pass');
});
