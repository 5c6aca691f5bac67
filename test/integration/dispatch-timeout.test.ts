/**
 * Issue 13 point 6: no attempt stays `dispatched` without being sent (docs/design.md#dispatch-timeout,
 * docs/transport.md "Dispatch timeout"). Against a real PostgreSQL — reached by the run driver
 * through a FaultProxy that loses the reply to the INSERT of the dispatch intents after its
 * COMMIT — and a real worker endpoint over HTTP:
 * - an intent whose INSERT committed although its reply was lost is sent on its run's next drive
 *   and runs once;
 * - an attempt left `dispatched` that its owner does not know it has to send is sent again after
 *   the dispatch timeout and runs once;
 * - an attempt a busy worker has queued (no `running` report yet) is re-sent after every dispatch
 *   timeout and answered as a duplicate, never run twice.
 */
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseIncarnationKey } from '@sched/core';
import { applyDefinitions, compileDefinitions } from '@sched/store';
import { eventually, type RequestMatcher, registerCleanup } from '@sched/testkit';
import type pg from 'pg';
import { beforeAll, describe, expect, test } from 'vitest';
import { HttpWorkerClient } from '../../packages/master/src/dispatch/worker-client.js';
import { ReportApplier } from '../../packages/master/src/reports/report-applier.js';
import { WorkerRouter } from '../../packages/master/src/routing/worker-router.js';
import { reassignAttempt } from '../../packages/master/src/runs/run-drive-queries.js';
import { type RegisteredWorker, RunDriver } from '../../packages/master/src/runs/run-driver.js';
import { newManualRun } from '../../packages/master/test/driver-fixtures.js';
import { migratedDatabase, quietLogger } from '../../packages/master/test/scheduler-fixtures.js';
import {
  type EndpointWorker,
  proxiedPool,
  recordingClient,
  type Sent,
  startEndpointWorker,
} from './driver-worker-fixtures.js';

const SECRET = 'dispatch-timeout-secret-0123456789';
let dir: string;
let pool: pg.Pool;
let url: string;
let owners = 0;
const workflows = new Map<string, number>();

/** One workflow per test, one shell task that appends its attempt id to `<dir>/<name>.ran`. */
const NAMES = ['lost-insert', 'never-sent', 'queued'] as const;
const ranFile = (name: string) => join(dir, `${name}.ran`);
const gate = () => join(dir, 'gate');

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'sched-dispatch-timeout-'));
  registerCleanup('remove temp dir', () => rm(dir, { recursive: true, force: true }));
  const db = await migratedDatabase();
  pool = db.pool;
  url = db.url;
  registerCleanup('drop database', db.drop);
  await applyDefinitions(
    pool,
    compileDefinitions(
      NAMES.map((name) => ({
        value: {
          name,
          tasks: [{ name: 'only', type: 'shell', command: `echo "$SCHED_ATTEMPT_ID" >> '${ranFile(name)}'` }],
        },
      })),
    ),
  );
  const { rows } = await pool.query<{ id: number; name: string }>(`SELECT id, name FROM workflows`);
  for (const r of rows) workflows.set(r.name, r.id);
});

const newOwner = () => `127.0.0.1:${7700 + ++owners}_1700000000000`;

function ranLines(name: string): string[] {
  const file = ranFile(name);
  return existsSync(file) ? readFileSync(file, 'utf8').trim().split('\n').filter(Boolean) : [];
}

async function attemptsOf(runId: number) {
  const { rows } = await pool.query<{ id: string; state: string; dispatch_seq: number }>(
    `SELECT id, state, dispatch_seq FROM task_attempts WHERE run_id = $1 ORDER BY id`,
    [runId],
  );
  return rows.map((r) => ({ id: Number(r.id), state: r.state, seq: r.dispatch_seq }));
}

async function runState(runId: number): Promise<string | undefined> {
  const { rows } = await pool.query<{ state: string }>(`SELECT state FROM runs WHERE id = $1`, [runId]);
  return rows[0]?.state;
}

/** A driver owned by `owner` over `db`, sending to `worker` through a recording HTTP client. */
function driverOf(
  owner: string,
  db: pg.Pool,
  workers: () => readonly RegisteredWorker[],
  worker: EndpointWorker,
  opts: { dispatchTimeoutMs: number; sweepIntervalMs: number; noWorkerRetryMs?: number },
): { driver: RunDriver; sent: Sent } {
  const http = new HttpWorkerClient({ secret: SECRET, timeoutMs: 5_000 });
  const { client, sent } = recordingClient(http);
  const driver = new RunDriver({
    db,
    nodeKey: owner,
    router: new WorkerRouter(),
    workers,
    client,
    leaseValid: () => true,
    logger: quietLogger,
    sweepIntervalMs: opts.sweepIntervalMs,
    noWorkerRetryMs: opts.noWorkerRetryMs ?? 200,
    unconfirmedRetryMs: 200,
    dispatchTimeoutMs: opts.dispatchTimeoutMs,
  });
  // Reports are applied by a master (this one), through the same database as the test's.
  worker.reportTo(
    new ReportApplier({
      db: pool,
      nodeKey: owner,
      wakeLocal: (ids) => driver.wake(ids),
      logger: quietLogger,
    }),
  );
  registerCleanup('stop driver', async () => {
    await driver.stop();
    http.close();
  });
  return { driver, sent };
}

/** The next PostgreSQL request that inserts attempt rows: its Sync (the COMMIT of the implicit transaction) goes out, the reply is lost. */
function insertOfAttempts(): RequestMatcher {
  const SYNC = Buffer.from([0x53, 0, 0, 0, 4]);
  let inInsert = false;
  return (chunk) => {
    if (chunk.includes('INSERT INTO task_attempts')) inInsert = true;
    return inInsert && chunk.length >= SYNC.length && chunk.subarray(chunk.length - SYNC.length).equals(SYNC);
  };
}

describe('an attempt is never left dispatched without being sent', () => {
  test('a dispatch intent whose INSERT committed but whose reply was lost is sent on its run’s next drive, and runs once', async () => {
    const worker = await startEndpointWorker({ dir: join(dir, 'w-lost-insert'), secret: SECRET });
    const { pool: viaProxy, proxy } = await proxiedPool(url);
    const owner = newOwner();
    // A dispatch timeout far beyond the test: the lost reply alone must lead to the send.
    const { driver } = driverOf(owner, viaProxy, () => [worker.view], worker, {
      dispatchTimeoutMs: 600_000,
      sweepIntervalMs: 600_000,
    });
    const cut = proxy.cutAfterRequest(insertOfAttempts(), { timeoutMs: 5_000 });
    const runId = await newManualRun(pool, workflows.get('lost-insert') as number, owner);
    await driver.start();
    driver.wake([runId]);
    await cut;
    // The INSERT committed although the driver never heard so: the intent is there.
    const [row] = await attemptsOf(runId);
    expect(row?.seq).toBe(1);

    await eventually(async () => expect(await runState(runId)).toBe('succeeded'), { timeoutMs: 15_000 });
    expect(ranLines('lost-insert')).toEqual([String(row?.id)]);
    expect(await attemptsOf(runId)).toEqual([{ id: row?.id, state: 'succeeded', seq: 1 }]);
    expect(worker.executor.started).toBe(1);
  });

  test('an attempt left dispatched that its owner does not know it has to send is sent after the dispatch timeout, and runs once', async () => {
    const worker = await startEndpointWorker({ dir: join(dir, 'w-never-sent'), secret: SECRET });
    const owner = newOwner();
    let offered: RegisteredWorker[] = [];
    const { driver, sent } = driverOf(owner, pool, () => offered, worker, {
      dispatchTimeoutMs: 1_000,
      sweepIntervalMs: 200,
      // The attempt created without a worker is not routed again by the driver during the test.
      noWorkerRetryMs: 600_000,
    });
    const runId = await newManualRun(pool, workflows.get('never-sent') as number, owner);
    await driver.start();
    driver.wake([runId]);
    // Driven once with no worker: the attempt is `pending`.
    const [pending] = await eventually(async () => {
      const rows = await attemptsOf(runId);
      expect(rows).toEqual([{ id: expect.any(Number), state: 'pending', seq: 0 }]);
      return rows;
    });
    // The run is held as `pending` by the empty worker list; it now becomes `dispatched` to the
    // worker behind the driver's back, as a move whose send was then lost would leave it.
    const { address, startTime } = parseIncarnationKey(worker.key);
    const target = { address, startTime, key: worker.key, czxid: 1_000n };
    expect(await reassignAttempt(pool, pending?.id as number, null, target, { fromSeq: 0, owner })).toBe(1);
    const movedAt = performance.now();
    offered = [worker.view];

    await eventually(async () => expect(await runState(runId)).toBe('succeeded'), { timeoutMs: 15_000 });
    const first = sent.dispatches.find((d) => d.request.attemptId === String(pending?.id));
    expect(first?.request.dispatchSeq).toBe(1);
    expect(first?.answer).toBe('accepted');
    // Sent once the dispatch timeout ran out, not before.
    expect((first?.at ?? 0) - movedAt).toBeGreaterThan(800);
    expect(ranLines('never-sent')).toEqual([String(pending?.id)]);
    expect(worker.executor.started).toBe(1);
  });

  test('an attempt a busy worker has queued is re-sent after each dispatch timeout, answered as a duplicate, and runs once', async () => {
    const worker = await startEndpointWorker({ dir: join(dir, 'w-queued'), secret: SECRET, capacity: 1 });
    // The worker's only slot is taken until the gate opens.
    worker.executor.submit({
      attemptId: 'blocker',
      runId: 'other',
      taskName: 'blocker',
      attempt: 1,
      fireTime: null,
      shardIndex: 0,
      shardTotal: 1,
      idempotencyKey: 'blocker',
      params: {},
      timeoutMs: null,
      worker: null,
      registration: null,
      dispatchSeq: 0,
      task: { type: 'shell', command: `while [ ! -e '${gate()}' ]; do sleep 0.05; done` },
    });
    const owner = newOwner();
    const { driver, sent } = driverOf(owner, pool, () => [worker.view], worker, {
      dispatchTimeoutMs: 500,
      sweepIntervalMs: 200,
    });
    const runId = await newManualRun(pool, workflows.get('queued') as number, owner);
    await driver.start();
    driver.wake([runId]);
    const [row] = await eventually(async () => {
      const rows = await attemptsOf(runId);
      expect(rows).toEqual([{ id: expect.any(Number), state: 'dispatched', seq: 1 }]);
      return rows;
    });
    const mine = () => sent.dispatches.filter((d) => d.request.attemptId === String(row?.id));
    // Queued there (no `running` report): sent again after each timeout, answered as a duplicate.
    await eventually(() => expect(mine().length).toBeGreaterThanOrEqual(3), { timeoutMs: 10_000 });
    const [firstAnswer, ...later] = mine().map((d) => d.answer);
    expect(firstAnswer).toBe('accepted');
    expect(new Set(later)).toEqual(new Set(['duplicate']));
    expect(new Set(mine().map((d) => d.request.dispatchSeq))).toEqual(new Set([1]));
    expect(worker.executor.snapshot(String(row?.id))?.state).toBe('queued');
    expect(await attemptsOf(runId)).toEqual([{ id: row?.id, state: 'dispatched', seq: 1 }]);

    writeFileSync(gate(), '');
    await eventually(async () => expect(await runState(runId)).toBe('succeeded'), { timeoutMs: 15_000 });
    expect(ranLines('queued')).toEqual([String(row?.id)]);
    expect(worker.executor.started).toBe(2); // the blocker, then the attempt: once
  });
});
