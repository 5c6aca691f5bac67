// A worker whose slots are all taken and that has no backlog refuses a dispatch as busy
// (WORKER_AT_CAPACITY); the master then routes the attempt to another worker or waits and tries
// again — and no attempt is lost or run twice. Real daemons: one master, two workers with one
// process slot each and no backlog, twelve runs of a 300 ms shell task triggered at once.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { eventually } from '@sched/testkit';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { TestCluster } from './cluster.js';

let cluster: TestCluster;

beforeAll(async () => {
  cluster = await TestCluster.create();
  await cluster.startMaster();
  const oneSlot = { SCHED_WORKER_CAPACITY: '1', SCHED_WORKER_BACKLOG: '0' };
  await cluster.startWorker(oneSlot);
  await cluster.startWorker(oneSlot);
});

afterAll(async () => {
  await cluster?.stop();
});

describe('a busy worker', () => {
  test('refuses as busy; the master routes elsewhere or waits; every attempt runs exactly once, never two at once on a worker', async () => {
    const out = join(cluster.dataRoot, 'busy-runs.txt');
    await cluster.apply({
      name: 'busy-workers',
      tasks: [
        {
          name: 'work',
          type: 'shell',
          // start and end times per execution, with the worker's data dir as its name
          command: `s=$(date +%s%N); sleep 0.3; echo "$SCHED_RUN_ID $PWD $s $(date +%s%N)" >> '${out}'`,
          routing: 'round-robin',
        },
      ],
    });
    const runs = 12;
    for (let i = 0; i < runs; i++) await cluster.trigger('busy-workers');

    const ended = await eventually(
      async () => {
        const rows = await cluster.query<{ state: string; n: number }>(
          `SELECT r.state, count(*)::int AS n FROM runs r JOIN workflows w ON w.id = r.workflow_id
            WHERE w.name = 'busy-workers' GROUP BY r.state`,
        );
        const done = rows.filter((r) => r.state !== 'pending' && r.state !== 'running');
        const total = done.reduce((n, r) => n + r.n, 0);
        if (total < runs) throw new Error(`runs so far: ${JSON.stringify(rows)}`);
        return rows;
      },
      { timeoutMs: 60_000, intervalMs: 200 },
    ).catch((err) => {
      throw new Error(`${(err as Error).message}\n${cluster.output()}`);
    });
    expect(ended).toEqual([{ state: 'succeeded', n: runs }]);

    // Exactly once: one execution per run, and one attempt per run.
    const lines = readFileSync(out, 'utf8').trim().split('\n');
    const executions = lines.map((l) => {
      const [runId, dir, start, end] = l.split(' ');
      return { runId, worker: dir?.split('/work/')[0], start: Number(start), end: Number(end) };
    });
    expect(new Set(executions.map((e) => e.runId)).size).toBe(runs);
    expect(executions).toHaveLength(runs);
    const attempts = await cluster.query<{ n: number; moved: number; workers: number }>(
      `SELECT count(*)::int AS n, count(*) FILTER (WHERE a.dispatch_seq > 1)::int AS moved,
              count(DISTINCT a.worker_key)::int AS workers
         FROM task_attempts a JOIN runs r ON r.id = a.run_id JOIN workflows w ON w.id = r.workflow_id
        WHERE w.name = 'busy-workers'`,
    );
    expect(attempts[0]?.n).toBe(runs);
    // Both workers ran some, and refusals happened: attempts were moved to another worker (or
    // back to pending and dispatched again), which raises their dispatch seq.
    expect(attempts[0]?.workers).toBe(2);
    expect(attempts[0]?.moved).toBeGreaterThan(0);
    // Never two at once on one worker (one slot each).
    for (const worker of new Set(executions.map((e) => e.worker))) {
      const mine = executions.filter((e) => e.worker === worker).sort((a, b) => a.start - b.start);
      for (let i = 1; i < mine.length; i++) {
        expect(mine[i]?.start).toBeGreaterThanOrEqual(mine[i - 1]?.end ?? Number.POSITIVE_INFINITY);
      }
    }
  });
});
