// A fan-out/fan-in DAG runs end to end on real daemons (one master, two
// workers as child processes); a failing task retries with its backoff and then fails the run;
// its downstream tasks never start.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { eventually } from '@sched/testkit';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { TestCluster } from './cluster.js';

let cluster: TestCluster;

beforeAll(async () => {
  cluster = await TestCluster.create();
  await cluster.startMaster();
  await cluster.startWorker();
  await cluster.startWorker();
});

afterAll(async () => {
  await cluster?.stop();
});

interface AttemptRow {
  task_name: string;
  attempt: number;
  state: string;
  worker_key: string | null;
  started_ms: number | null;
  ended_ms: number | null;
  exit_code: number | null;
}

async function waitForRun(workflow: string, timeoutMs = 60_000) {
  return eventually(
    async () => {
      const rows = await cluster.query<{ id: number; state: string }>(
        `SELECT r.id, r.state FROM runs r JOIN workflows w ON w.id = r.workflow_id WHERE w.name = $1`,
        [workflow],
      );
      const run = rows[0];
      if (!run || !['succeeded', 'failed', 'cancelled'].includes(run.state)) {
        throw new Error(`run of ${workflow} not finished: ${JSON.stringify(rows)}`);
      }
      return run;
    },
    { timeoutMs, intervalMs: 200 },
  ).catch((err) => {
    throw new Error(`${(err as Error).message}\n${cluster.output()}`);
  });
}

async function attemptsOf(runId: number): Promise<AttemptRow[]> {
  return cluster.query<AttemptRow>(
    `SELECT task_name, attempt, state, worker_key, exit_code,
            (extract(epoch FROM started_at) * 1000)::float8 AS started_ms,
            (extract(epoch FROM ended_at) * 1000)::float8 AS ended_ms
       FROM task_attempts WHERE run_id = $1 ORDER BY started_at, task_name, attempt`,
    [runId],
  );
}

describe('DAG runs on real daemons', () => {
  test('a 6-task fan-out/fan-in DAG runs to success, every task after its upstream tasks', async () => {
    const sh = (name: string, dependsOn: string[] = []) => ({
      name,
      type: 'shell',
      command: `echo "${name} on $SCHED_TASK_NAME attempt $SCHED_ATTEMPT"; sleep 0.2`,
      routing: 'round-robin',
      dependsOn,
    });
    await cluster.apply({
      name: 'fan-out-fan-in',
      tasks: [
        sh('extract'),
        sh('clean', ['extract']),
        sh('enrich', ['extract']),
        sh('audit', ['extract']),
        sh('load', ['clean', 'enrich', 'audit']),
        sh('report', ['load']),
      ],
    });
    await cluster.trigger('fan-out-fan-in');
    const run = await waitForRun('fan-out-fan-in');
    expect(run.state).toBe('succeeded');

    const attempts = await attemptsOf(run.id);
    expect(attempts.map((a) => a.task_name).sort()).toEqual([
      'audit',
      'clean',
      'enrich',
      'extract',
      'load',
      'report',
    ]);
    for (const a of attempts) {
      expect(a.state).toBe('succeeded');
      expect(a.exit_code).toBe(0);
    }
    const at = (name: string) => attempts.find((a) => a.task_name === name) as AttemptRow;
    const deps: Record<string, string[]> = {
      clean: ['extract'],
      enrich: ['extract'],
      audit: ['extract'],
      load: ['clean', 'enrich', 'audit'],
      report: ['load'],
    };
    for (const [task, ups] of Object.entries(deps)) {
      for (const up of ups)
        expect(at(task).started_ms as number).toBeGreaterThanOrEqual(at(up).ended_ms as number);
    }
    // Every attempt ran on one of the cluster's two workers.
    const workerKeys = cluster.workers.map((w) => w.key);
    for (const a of attempts) expect(workerKeys).toContain(a.worker_key);
  });

  test('a failing task retries with exponential backoff, then fails the run; downstream never starts', async () => {
    await cluster.apply({
      name: 'always-fails',
      tasks: [
        {
          name: 'flaky',
          type: 'shell',
          command: 'echo failing; exit 3',
          retries: { max: 2, backoff: 'exponential', delay: '1s' },
        },
        { name: 'after', type: 'shell', command: 'echo must not run', dependsOn: ['flaky'] },
        { name: 'independent', type: 'noop' },
      ],
    });
    await cluster.trigger('always-fails');
    const run = await waitForRun('always-fails');
    expect(run.state).toBe('failed');

    const attempts = await attemptsOf(run.id);
    const flaky = attempts.filter((a) => a.task_name === 'flaky');
    expect(flaky.map((a) => [a.attempt, a.state, a.exit_code])).toEqual([
      [1, 'failed', 3],
      [2, 'failed', 3],
      [3, 'failed', 3],
    ]);
    const [a1, a2, a3] = flaky as [AttemptRow, AttemptRow, AttemptRow];
    // The delays between an attempt's end and the next attempt's start follow the backoff: 1 s, then 2 s.
    expect((a2.started_ms as number) - (a1.ended_ms as number)).toBeGreaterThanOrEqual(1_000 - 50);
    expect((a3.started_ms as number) - (a2.ended_ms as number)).toBeGreaterThanOrEqual(2_000 - 50);
    expect((a3.started_ms as number) - (a2.ended_ms as number)).toBeLessThan(6_000);
    expect(attempts.some((a) => a.task_name === 'after')).toBe(false);
    expect(attempts.find((a) => a.task_name === 'independent')?.state).toBe('succeeded');
  });

  test('logs: the full output stays in a file on the worker, the tail is stored with the result', async () => {
    await cluster.apply({
      name: 'chatty',
      // About 290 KB of output: more than the stored tail (64 KiB).
      tasks: [{ name: 'talk', type: 'shell', command: 'seq 1 50000' }],
    });
    await cluster.trigger('chatty');
    const run = await waitForRun('chatty');
    expect(run.state).toBe('succeeded');
    const [attempt] = await cluster.query<{ id: number; worker_key: string; log_tail: string }>(
      `SELECT id, worker_key, log_tail FROM task_attempts WHERE run_id = $1`,
      [run.id],
    );
    const tail = attempt?.log_tail ?? '';
    expect(tail).toContain('\n50000\n');
    expect(tail).not.toContain('\n1\n2\n3\n');
    expect(Buffer.byteLength(tail)).toBeLessThanOrEqual(64 * 1024 + 512);
    const worker = cluster.workers.find((w) => w.key === attempt?.worker_key);
    const file = join(cluster.dataRoot, worker?.name ?? '?', 'logs', `${attempt?.id}.log`);
    const full = readFileSync(file, 'utf8');
    const numbers = full.split('\n').filter((l) => /^\d+$/.test(l));
    expect(numbers).toHaveLength(50_000);
    expect(numbers[0]).toBe('1');
    expect(numbers.at(-1)).toBe('50000');
  });

  test("parameters: a task sees the workflow's defaults, overridden by the trigger's, overridden by its own", async () => {
    await cluster.apply({
      name: 'greeter',
      params: { WHO: 'world', MOOD: 'calm' },
      tasks: [
        { name: 'plain', type: 'shell', command: 'echo "hello $WHO, $MOOD"' },
        { name: 'own', type: 'shell', command: 'echo "hello $WHO, $MOOD"', params: { MOOD: 'cheerful' } },
      ],
    });
    const tailsOf = async (runId: number) =>
      Object.fromEntries(
        (
          await cluster.query<{ task_name: string; log_tail: string }>(
            `SELECT task_name, log_tail FROM task_attempts WHERE run_id = $1`,
            [runId],
          )
        ).map((a) => [a.task_name, a.log_tail.split('\n').find((l) => l.startsWith('hello'))]),
      );
    await cluster.trigger('greeter');
    const first = await waitForRun('greeter');
    expect(first.state).toBe('succeeded');
    expect(await tailsOf(first.id)).toEqual({ plain: 'hello world, calm', own: 'hello world, cheerful' });
    await cluster.query(`DELETE FROM runs WHERE id = $1`, [first.id]);
    await cluster.trigger('greeter', { WHO: 'there', MOOD: 'tense' });
    const second = await waitForRun('greeter');
    expect(await tailsOf(second.id)).toEqual({ plain: 'hello there, tense', own: 'hello there, cheerful' });
  });

  test('concurrency queue: scheduled runs of one workflow run one after another, never overlapping', async () => {
    await cluster.apply({
      name: 'one-at-a-time',
      schedule: { cron: '* * * * * ?', concurrency: 'queue' },
      tasks: [{ name: 'slow', type: 'shell', command: 'sleep 1.5' }],
    });
    const runs = await eventually(
      async () => {
        const rows = await cluster.query<{ started_ms: number; ended_ms: number }>(
          `SELECT (extract(epoch FROM r.started_at) * 1000)::float8 AS started_ms,
                  (extract(epoch FROM r.ended_at) * 1000)::float8 AS ended_ms
             FROM runs r JOIN workflows w ON w.id = r.workflow_id
            WHERE w.name = 'one-at-a-time' AND r.state = 'succeeded' ORDER BY r.started_at`,
        );
        if (rows.length < 3) throw new Error(`only ${rows.length} queued runs done`);
        return rows;
      },
      { timeoutMs: 40_000, intervalMs: 500 },
    );
    await cluster.query(`UPDATE schedules SET paused = true, revision = revision + 1`);
    for (let i = 1; i < runs.length; i++) {
      expect(runs[i]?.started_ms as number).toBeGreaterThanOrEqual(runs[i - 1]?.ended_ms as number);
    }
  });
});
