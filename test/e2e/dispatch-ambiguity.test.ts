// A dispatch whose request reached the worker but whose answer was lost (the connection was
// reset after the request went through: Curator's "request succeeded, reply lost") must not make
// the master give the same attempt to a second worker: the first one is running it. The worker's
// inbound proxy cuts the connection right after the dispatch request; the task writes a start
// line per execution, so two executions of one attempt are counted directly.
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { eventually } from '@sched/testkit';
import { afterEach, describe, expect, test } from 'vitest';
import { TestCluster } from './cluster.js';

let cluster: TestCluster | undefined;

afterEach(async () => {
  await cluster?.stop();
  cluster = undefined;
});

const isDispatch = (chunk: Buffer) => chunk.toString('latin1').startsWith('POST /v1/attempts/batch');

/**
 * Two workers; `first` routing picks the one whose registered address sorts first (the router's
 * stable order), whose proxy gets the fault. Tasks log the node name they ran on.
 */
async function twoWorkers(c: TestCluster) {
  const a = await c.startWorker({ CHAOS_NODE: 'a' });
  const b = await c.startWorker({ CHAOS_NODE: 'b' });
  return a.address < b.address
    ? { target: a, targetNode: 'a', other: b }
    : { target: b, targetNode: 'b', other: a };
}

function starts(marks: string): { attempt: number; node: string }[] {
  if (!existsSync(marks)) return [];
  return readFileSync(marks, 'utf8')
    .split('\n')
    .filter((l) => l.startsWith('start '))
    .map((l) => {
      const [, attempt, node] = l.split(' ');
      return { attempt: Number(attempt), node: node ?? '' };
    });
}

describe('a dispatch whose answer is lost', () => {
  test('the attempt runs once, on the worker that got it; it is not given to another worker', async () => {
    cluster = await TestCluster.create({ peerProxies: true });
    const c = cluster;
    const master = await c.startMaster();
    const { target, targetNode, other } = await twoWorkers(c);
    const marks = join(c.dataRoot, 'marks.log');
    await c.apply({
      name: 'lost-answer',
      tasks: [
        {
          name: 'work',
          type: 'shell',
          routing: 'first',
          command: `echo "start $SCHED_ATTEMPT $CHAOS_NODE" >> ${marks}; sleep 3; echo "end $SCHED_ATTEMPT $CHAOS_NODE" >> ${marks}`,
        },
      ],
    });
    // Its answer to the dispatch is lost.
    const cut = target.inboundProxy?.cutAfterRequest(isDispatch, { timeoutMs: 5_000 });
    await c.trigger('lost-answer');
    await cut;
    const rows = await eventually(
      async () => {
        const r = await c.query<{ state: string; worker_key: string; attempt: number }>(
          `SELECT a.state, a.worker_key, a.attempt FROM task_attempts a ORDER BY a.id`,
        );
        const [run] = await c.query<{ state: string }>(`SELECT state FROM runs`);
        if (run?.state !== 'succeeded') throw new Error(`run ${run?.state}: ${JSON.stringify(r)}`);
        return r;
      },
      { timeoutMs: 60_000, intervalMs: 200 },
    ).catch((err) => {
      throw new Error(`${(err as Error).message}\n${c.output()}`);
    });
    const executions = starts(marks);
    expect(executions, 'one execution of the one attempt').toEqual([{ attempt: 1, node: targetNode }]);
    expect(rows).toEqual([{ state: 'succeeded', worker_key: target.key, attempt: 1 }]);
    expect(other.child.running).toBe(true);
    // The master asked the worker before deciding, and the worker said it had the attempt.
    expect(master.child.output()).toMatch(/dispatch failed after the request was sent; asking the worker/);
  }, 120_000);

  test('a dispatch held in a black hole past its deadline, then delivered late, still runs once', async () => {
    cluster = await TestCluster.create({ peerProxies: true });
    const c = cluster;
    const master = await c.startMaster();
    const { target } = await twoWorkers(c);
    const marks = join(c.dataRoot, 'marks.log');
    await c.apply({
      name: 'late-copy',
      tasks: [
        {
          name: 'work',
          type: 'shell',
          routing: 'first',
          command: `echo "start $SCHED_ATTEMPT $CHAOS_NODE" >> ${marks}; sleep 1; echo "end $SCHED_ATTEMPT $CHAOS_NODE" >> ${marks}`,
        },
      ],
    });
    // The master's dispatch (and then its questions) to the first worker vanish; its ZooKeeper
    // session is untouched, so it stays registered and is not failed over.
    target.inboundProxy?.setMode('blackhole');
    await c.trigger('late-copy');
    await eventually(() => expect(master.child.output()).toMatch(/could not ask the worker whether it has/), {
      timeoutMs: 40_000,
      intervalMs: 200,
    });
    // Nothing ran anywhere meanwhile: the attempt was not given to the second worker.
    expect(starts(marks)).toEqual([]);
    // Heal: the queued dispatch and the master's question both arrive, in either order.
    target.inboundProxy?.setMode('pass');
    await eventually(
      async () => {
        const [run] = await c.query<{ state: string }>(`SELECT state FROM runs`);
        if (run?.state !== 'succeeded') throw new Error(`run ${run?.state}`);
      },
      { timeoutMs: 60_000, intervalMs: 200 },
    ).catch((err) => {
      throw new Error(`${(err as Error).message}\n${c.output()}`);
    });
    const executions = starts(marks);
    expect(executions, 'exactly one execution').toHaveLength(1);
    const rows = await c.query<{ state: string; worker_key: string }>(
      `SELECT state, worker_key FROM task_attempts ORDER BY id`,
    );
    expect(rows).toEqual([{ state: 'succeeded', worker_key: target.key }]);
  }, 150_000);
});
