import { readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { AttemptRequest } from '@sched/protocol';
import { LogStore, TaskExecutor, WorkerHttpServer } from '@sched/worker';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { HttpWorkerClient } from '../../packages/master/src/dispatch/worker-client.js';
import { WorkerRouter } from '../../packages/master/src/routing/worker-router.js';
import { compareWorkers, type WorkerView } from '../../packages/master/src/routing/worker-view.js';

/**
 * Routing over real worker endpoints (end to end on the worker side): three
 * in-process workers with their HTTP endpoints; the router's plan is dispatched with the
 * master's HTTP client, and the tasks themselves say where and as which shard they ran.
 */
const SECRET = 'routing-dispatch-secret-0123456789';
let dir: string;
const workers: { view: WorkerView; executor: TaskExecutor; server: WorkerHttpServer }[] = [];
let client: HttpWorkerClient;
let counter = 0;

function shellAttempt(
  worker: WorkerView,
  command: string,
  extra: Partial<AttemptRequest> = {},
): AttemptRequest {
  counter++;
  return {
    attemptId: `rd-${process.pid}-${counter}`,
    runId: 'r1',
    taskName: 'report',
    attempt: 1,
    fireTime: null,
    shardIndex: 0,
    shardTotal: 1,
    idempotencyKey: `r1/report/${counter}`,
    params: {},
    timeoutMs: null,
    worker: worker.key,
    registration: null,
    dispatchSeq: 1,
    task: { type: 'shell', command },
    ...extra,
  };
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'sched-routing-dispatch-'));
  for (let i = 1; i <= 3; i++) {
    const logs = new LogStore({ dir: join(dir, `w${i}`, 'logs') });
    const executor = new TaskExecutor({
      capacity: 1,
      // No backlog: a worker whose slot is taken refuses (busy) rather than queueing.
      backlog: 0,
      killGraceMs: 200,
      logs,
      workDir: join(dir, `w${i}`, 'work'),
    });
    let key = '';
    const server = new WorkerHttpServer({ executor, logs, secret: SECRET, nodeKey: () => key });
    const { port } = await server.listen(0);
    key = `127.0.0.1:${port}_1700000000000`;
    const view: WorkerView = {
      key,
      address: `127.0.0.1:${port}`,
      startTime: 1_700_000_000_000,
      groups: ['default'],
      weight: 1,
      capacity: 1,
      running: 0,
      state: 'NORMAL',
      cpu: 0,
      memory: 0,
      load: 0,
    };
    workers.push({ view, executor, server });
  }
  // In the router's stable order (by address), so index i is shard i and workers[0] is "first".
  workers.sort((a, b) => compareWorkers(a.view, b.view));
  client = new HttpWorkerClient({ secret: SECRET });
});
afterAll(async () => {
  client.close();
  for (const w of workers) {
    await w.executor.killAll('test over');
    await w.server.close();
  }
  await rm(dir, { recursive: true, force: true });
});

describe('routing plans dispatched to real worker endpoints', () => {
  test('sharding-broadcast runs once on every worker, each with its own index and the same total', async () => {
    const router = new WorkerRouter();
    const plan = router.route(
      workers.map((w) => w.view),
      { strategy: 'sharding-broadcast', group: 'default', scope: 'wf/report' },
    );
    if (plan.mode !== 'broadcast') throw new Error('expected a broadcast plan');
    const out = join(dir, 'shards');
    const attempts = plan.shards.map((s) =>
      shellAttempt(s.worker, `echo "$SCHED_SHARD_INDEX/$SCHED_SHARD_TOTAL on $WORKER" >> '${out}'`, {
        shardIndex: s.shardIndex,
        shardTotal: s.shardTotal,
        params: { WORKER: s.worker.address },
      }),
    );
    const answers = await Promise.all(
      attempts.map((a, i) => client.dispatch(plan.shards[i]?.worker.address as string, [a])),
    );
    expect(answers.map((a) => a[0]?.outcome)).toEqual(['accepted', 'accepted', 'accepted']);
    for (const [i, w] of workers.entries()) await w.executor.result(attempts[i]?.attemptId as string);
    const lines = readFileSync(out, 'utf8').trim().split('\n').sort();
    expect(lines).toEqual(workers.map((w, i) => `${i}/3 on ${w.view.address}`).sort());
    for (const w of workers) expect(w.executor.started).toBe(1);
  });

  test('busyover skips a worker that is full; a full worker that the heartbeat still shows free refuses, and the next one takes it', async () => {
    const router = new WorkerRouter();
    const [w1, w2] = workers;
    if (!w1 || !w2) throw new Error('three workers expected');
    const gate = join(dir, 'gate');
    const blocker = shellAttempt(w1.view, `while [ ! -e '${gate}' ]; do sleep 0.02; done`);
    expect((await client.dispatch(w1.view.address, [blocker]))[0]?.outcome).toBe('accepted');

    // The heartbeat knows w1 is full: busyover does not even offer it.
    const fresh = workers.map((w) => (w === w1 ? { ...w.view, running: 1 } : w.view));
    const plan = router.route(fresh, { strategy: 'busyover', group: 'default', scope: 'wf/x' });
    expect(plan.mode === 'ordered' && plan.targets.map((t) => t.key)).toEqual([
      w2.view.key,
      workers[2]?.view.key,
    ]);

    // A stale heartbeat (w1 looks free): w1 is tried first, refuses at capacity, the next worker runs it.
    const stale = router.route(
      workers.map((w) => w.view),
      { strategy: 'first', group: 'default', scope: 'wf/y' },
    );
    if (stale.mode !== 'ordered') throw new Error('expected an ordered plan');
    let ranOn: WorkerView | undefined;
    const refusals: string[] = [];
    for (const target of stale.targets) {
      const answer = (await client.dispatch(target.address, [shellAttempt(target, 'true')]))[0];
      if (answer?.outcome === 'accepted') {
        ranOn = target;
        break;
      }
      refusals.push(`${target.address}:${answer?.outcome === 'refused' ? answer.code : '?'}`);
    }
    expect(refusals).toEqual([`${w1.view.address}:WORKER_AT_CAPACITY`]);
    expect(ranOn?.key).toBe(w2.view.key);
    const { writeFileSync } = await import('node:fs');
    writeFileSync(gate, '');
    await w1.executor.result(blocker.attemptId);
  });
});
