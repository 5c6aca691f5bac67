/**
 * Issue 13 point 10: a run becomes `cancelled` only once each of its attempts is confirmed ended
 * (docs/design.md#cancel), and the cancels of one batch go out concurrently. Against a real
 * PostgreSQL and two real worker endpoints over HTTP, each behind its own FaultProxy (the master's
 * peer map dials the proxy): while one worker does not answer the cancel, its run stays cancelling
 * — `running`, `cancel_requested_at` set, its attempt running on the worker — and a queued
 * successor of its workflow is not released; the other run, whose worker answers, is cancelled at
 * once, not after the first cancel's timeout; once the first worker answers again and kills the
 * attempt, that run is cancelled too, and only then does its successor start.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseIncarnationKey } from '@sched/core';
import { WireError } from '@sched/protocol';
import { applyDefinitions, compileDefinitions, requestRunCancel } from '@sched/store';
import { eventually, FaultProxy, registerCleanup } from '@sched/testkit';
import type pg from 'pg';
import { beforeAll, describe, expect, test } from 'vitest';
import { HttpWorkerClient } from '../../packages/master/src/dispatch/worker-client.js';
import { ReportApplier } from '../../packages/master/src/reports/report-applier.js';
import { WorkerRouter } from '../../packages/master/src/routing/worker-router.js';
import { insertAttempts } from '../../packages/master/src/runs/run-drive-queries.js';
import { RunDriver } from '../../packages/master/src/runs/run-driver.js';
import { newManualRun } from '../../packages/master/test/driver-fixtures.js';
import { migratedDatabase, quietLogger } from '../../packages/master/test/scheduler-fixtures.js';
import { recordingClient, startEndpointWorker } from './driver-worker-fixtures.js';

const SECRET = 'cancel-confirmed-secret-0123456789';
/** The master's per-request deadline to workers: a cancel to a silent worker fails after this. */
const REQUEST_TIMEOUT_MS = 3_000;
let dir: string;
let pool: pg.Pool;
const workflows = new Map<string, number>();

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'sched-cancel-confirmed-'));
  registerCleanup('remove temp dir', () => rm(dir, { recursive: true, force: true }));
  const db = await migratedDatabase();
  pool = db.pool;
  registerCleanup('drop database', db.drop);
  await applyDefinitions(
    pool,
    compileDefinitions(
      (['a', 'b'] as const).map((g) => ({
        value: {
          name: `sleepy-${g}`,
          // Concurrency `queue`: a run that ends releases the next queued one (never fires here).
          schedule: { cron: '0 0 1 1 *', concurrency: 'queue' },
          tasks: [{ name: 'nap', type: 'shell', command: 'sleep 60', workerGroup: `group-${g}` }],
        },
      })),
    ),
  );
  const { rows } = await pool.query<{ id: number; name: string }>(`SELECT id, name FROM workflows`);
  for (const r of rows) workflows.set(r.name, r.id);
});

async function runOf(runId: number) {
  const { rows } = await pool.query<{
    state: string;
    queued: boolean;
    cancel_requested: boolean;
    ended_at: Date | null;
  }>(
    `SELECT state, queued, cancel_requested_at IS NOT NULL AS cancel_requested, ended_at FROM runs WHERE id = $1`,
    [runId],
  );
  return rows[0];
}

async function attemptsOf(runId: number) {
  const { rows } = await pool.query<{ id: string; state: string; ended_at: Date | null }>(
    `SELECT id, state, ended_at FROM task_attempts WHERE run_id = $1 ORDER BY id`,
    [runId],
  );
  return rows.map((r) => ({ id: String(r.id), state: r.state, endedAt: r.ended_at }));
}

describe('cancelling a run', () => {
  test('a run is not cancelled while its attempt still runs on a worker that does not answer the cancel; it is once the kill is confirmed; the other run of the batch is cancelled at once', async () => {
    const wa = await startEndpointWorker({ dir: join(dir, 'wa'), secret: SECRET, groups: ['group-a'] });
    const wb = await startEndpointWorker({ dir: join(dir, 'wb'), secret: SECRET, groups: ['group-b'] });
    const toA = await FaultProxy.start({ host: '127.0.0.1', port: Number(wa.address.split(':')[1]) });
    const toB = await FaultProxy.start({ host: '127.0.0.1', port: Number(wb.address.split(':')[1]) });
    const http = new HttpWorkerClient({
      secret: SECRET,
      timeoutMs: REQUEST_TIMEOUT_MS,
      peerMap: { [wa.address]: toA.address, [wb.address]: toB.address },
    });
    const { client, sent } = recordingClient(http);
    const owner = '127.0.0.1:7801_1700000000000';
    const driver = new RunDriver({
      db: pool,
      nodeKey: owner,
      router: new WorkerRouter(),
      workers: () => [wa.view, wb.view],
      client,
      leaseValid: () => true,
      logger: quietLogger,
      sweepIntervalMs: 60_000,
      noWorkerRetryMs: 200,
      unconfirmedRetryMs: 200,
      cancelRetryMs: 300,
    });
    registerCleanup('stop driver', async () => {
      await driver.stop();
      http.close();
    });
    const applier = new ReportApplier({
      db: pool,
      nodeKey: owner,
      wakeLocal: (ids) => driver.wake(ids),
      logger: quietLogger,
    });
    wa.reportTo(applier);
    wb.reportTo(applier);

    const runA = await newManualRun(pool, workflows.get('sleepy-a') as number, owner);
    const runB = await newManualRun(pool, workflows.get('sleepy-b') as number, owner);
    // A successor of run A's workflow, queued behind it (as concurrency `queue` leaves one).
    const successor = await newManualRun(pool, workflows.get('sleepy-a') as number, owner);
    await pool.query(`UPDATE runs SET queued = true WHERE id = $1`, [successor]);
    await driver.start();
    driver.wake([runA, runB]);
    const [attemptA, attemptB] = await eventually(
      async () => {
        const a = await attemptsOf(runA);
        const b = await attemptsOf(runB);
        expect([a[0]?.state, b[0]?.state]).toEqual(['running', 'running']);
        return [a[0]?.id as string, b[0]?.id as string];
      },
      { timeoutMs: 15_000 },
    );

    // Worker A stops answering; both runs are cancelled, and driven in one batch.
    toA.setMode('blackhole');
    expect(await requestRunCancel(pool, runA)).toBe('running');
    expect(await requestRunCancel(pool, runB)).toBe('running');
    const cancelledAt = performance.now();
    driver.wake([runA, runB]);

    // Run B: its worker answers, kills the attempt, and the run is cancelled — without waiting
    // for the cancel that hangs on worker A.
    await eventually(async () => expect((await runOf(runB))?.state).toBe('cancelled'), {
      timeoutMs: REQUEST_TIMEOUT_MS - 500,
    });
    expect(performance.now() - cancelledAt).toBeLessThan(REQUEST_TIMEOUT_MS - 500);
    expect(wb.executor.snapshot(attemptB)?.state).toBe('killed');
    expect((await attemptsOf(runB))[0]?.state).toBe('killed');

    // Run A: past the cancel's timeout (and several retries), still cancelling while its attempt runs.
    const until = performance.now() + REQUEST_TIMEOUT_MS + 1_500;
    while (performance.now() < until) {
      expect(await runOf(runA)).toMatchObject({ state: 'running', cancel_requested: true, ended_at: null });
      expect((await attemptsOf(runA))[0]?.state).toBe('running');
      expect(wa.executor.snapshot(attemptA)?.state).toBe('running');
      expect(await runOf(successor)).toMatchObject({ state: 'pending', queued: true });
      await new Promise((r) => setTimeout(r, 200));
    }
    expect(
      sent.cancels.filter((c) => c.attemptId === attemptA && c.outcome === 'error').length,
    ).toBeGreaterThan(0);

    // Worker A answers again: the cancel is retried, the attempt killed, and then the run cancelled.
    toA.setMode('pass');
    await eventually(async () => expect((await runOf(runA))?.state).toBe('cancelled'), { timeoutMs: 15_000 });
    expect(wa.executor.snapshot(attemptA)?.state).toBe('killed');
    const [endedA] = await attemptsOf(runA);
    expect(endedA?.state).toBe('killed');
    const run = await runOf(runA);
    expect(run?.ended_at?.getTime()).toBeGreaterThanOrEqual(endedA?.endedAt?.getTime() ?? Infinity);
    // Only now is the successor released.
    const { rows } = await pool.query<{ queued: boolean }>(`SELECT queued FROM runs WHERE id = $1`, [
      successor,
    ]);
    expect(rows[0]?.queued).toBe(false);
  });

  test('an attempt dispatched but never delivered is revoked on its worker and ended killed before the run is cancelled; a late copy of its dispatch is refused', async () => {
    const wc = await startEndpointWorker({ dir: join(dir, 'wc'), secret: SECRET, groups: ['group-b'] });
    const http = new HttpWorkerClient({ secret: SECRET, timeoutMs: REQUEST_TIMEOUT_MS });
    const owner = '127.0.0.1:7802_1700000000000';
    // A running run whose attempt was persisted `dispatched` to wc, its dispatch not (yet) arrived.
    const runId = await newManualRun(pool, workflows.get('sleepy-b') as number, owner);
    await pool.query(`UPDATE runs SET state = 'running', started_at = clock_timestamp() WHERE id = $1`, [
      runId,
    ]);
    const { address, startTime } = parseIncarnationKey(wc.key);
    const [row] = await insertAttempts(pool, owner, [
      {
        runId,
        taskName: 'nap',
        attempt: 1,
        shardIndex: 0,
        shardTotal: 1,
        worker: { address, startTime, key: wc.key, czxid: 1_000n },
      },
    ]);
    const attemptId = row?.id as number;
    expect(await requestRunCancel(pool, runId)).toBe('running');

    const driver = new RunDriver({
      db: pool,
      nodeKey: owner,
      router: new WorkerRouter(),
      workers: () => [wc.view],
      client: http,
      leaseValid: () => true,
      logger: quietLogger,
      sweepIntervalMs: 60_000,
      cancelRetryMs: 300,
    });
    registerCleanup('stop driver', async () => {
      await driver.stop();
      http.close();
    });
    await driver.start();
    driver.wake([runId]);

    await eventually(async () => expect((await runOf(runId))?.state).toBe('cancelled'), {
      timeoutMs: 10_000,
    });
    expect(await attemptsOf(runId)).toMatchObject([{ id: String(attemptId), state: 'killed' }]);
    // The dispatch arriving late is refused: the worker revoked that assignment.
    const [late] = await http.dispatch(wc.address, [
      {
        attemptId: String(attemptId),
        runId: String(runId),
        taskName: 'nap',
        attempt: 1,
        fireTime: null,
        shardIndex: 0,
        shardTotal: 1,
        idempotencyKey: `run-${runId}/nap/0`,
        params: {},
        timeoutMs: null,
        worker: wc.key,
        registration: '1000',
        dispatchSeq: row?.dispatchSeq as number,
        task: { type: 'shell', command: 'sleep 60' },
      },
    ]);
    expect(late).toMatchObject({ outcome: 'refused', code: WireError.AttemptRevoked });
    expect(wc.executor.started).toBe(0);
  });
});
