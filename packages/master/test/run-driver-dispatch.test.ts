/**
 * The run driver's dispatch bookkeeping against a real PostgreSQL (the worker is a scripted
 * client): moves of an attempt are fenced on its run's owner and its dispatch seq; a dispatch
 * whose answer is lost is confirmed with the worker in requests of at most 1000 attempts; an
 * attempt held because the worker could not be asked is asked about again after the driver was
 * stopped and started (self-fencing and back).
 */
import { parseIncarnationKey } from '@sched/core';
import type { AttemptRequest } from '@sched/protocol';
import { applyDefinitions, compileDefinitions } from '@sched/store';
import { eventually, registerCleanup } from '@sched/testkit';
import type pg from 'pg';
import { beforeAll, describe, expect, it } from 'vitest';
import { type WorkerClient, WorkerUnreachableError } from '../src/dispatch/worker-client.js';
import { WorkerRouter } from '../src/routing/worker-router.js';
import { insertAttempts, reassignAttempt } from '../src/runs/run-drive-queries.js';
import { RunDriver } from '../src/runs/run-driver.js';
import { newManualRun, workerView } from './driver-fixtures.js';
import { migratedDatabase, quietLogger } from './scheduler-fixtures.js';

let pool: pg.Pool;
let workflowId: number;
const WORKER = '127.0.0.1:7503_1700000000003';
let owners = 0;

beforeAll(async () => {
  const db = await migratedDatabase();
  pool = db.pool;
  registerCleanup('drop database', db.drop);
  await applyDefinitions(
    pool,
    compileDefinitions([{ value: { name: 'dispatching', tasks: [{ name: 'only', type: 'noop' }] } }]),
  );
  const { rows } = await pool.query<{ id: number }>(`SELECT id FROM workflows WHERE name = 'dispatching'`);
  workflowId = rows[0]?.id as number;
});

/** A fresh master key per test, so no run of another test is its to drive. */
const newOwner = () => `127.0.0.1:${7600 + ++owners}_1700000000000`;

const newRun = (owner: string): Promise<number> => newManualRun(pool, workflowId, owner);

/** `n` attempts of one run already `dispatched` to WORKER (as a previous owner left them). */
async function dispatchedAttempts(owner: string, runId: number, n: number): Promise<number[]> {
  const { address, startTime } = parseIncarnationKey(WORKER);
  const rows = await insertAttempts(
    pool,
    owner,
    Array.from({ length: n }, (_, i) => ({
      runId,
      taskName: 'only',
      attempt: 1,
      shardIndex: i,
      shardTotal: n,
      worker: { address, startTime, key: WORKER, czxid: 1_000n },
    })),
  );
  return rows.map((r) => r.id);
}

async function seqs(ids: number[]): Promise<Map<number, { state: string; seq: number }>> {
  const { rows } = await pool.query<{ id: string; state: string; dispatch_seq: number }>(
    `SELECT id, state, dispatch_seq FROM task_attempts WHERE id = ANY($1::bigint[])`,
    [ids],
  );
  return new Map(rows.map((r) => [Number(r.id), { state: r.state, seq: r.dispatch_seq }]));
}

function driver(owner: string, client: WorkerClient): RunDriver {
  const d = new RunDriver({
    db: pool,
    nodeKey: owner,
    router: new WorkerRouter(),
    workers: () => [workerView(WORKER, 1_000n, 10_000)],
    client,
    leaseValid: () => true,
    logger: quietLogger,
    sweepIntervalMs: 60_000,
    noWorkerRetryMs: 100,
    unconfirmedRetryMs: 100,
  });
  registerCleanup('stop driver', () => d.stop());
  return d;
}

describe('moving an attempt is fenced', () => {
  it('on its run’s owner and on the dispatch seq the mover knows', async () => {
    const owner = newOwner();
    const runId = await newRun(owner);
    const [id] = await dispatchedAttempts(owner, runId, 1);
    const attemptId = id as number;
    expect((await seqs([attemptId])).get(attemptId)).toEqual({ state: 'dispatched', seq: 1 });
    // A deposed owner moves nothing; nor does a mover that knows an older assignment.
    expect(await reassignAttempt(pool, attemptId, WORKER, null, { owner: newOwner() })).toBeNull();
    expect(await reassignAttempt(pool, attemptId, WORKER, null, { owner, fromSeq: 0 })).toBeNull();
    expect((await seqs([attemptId])).get(attemptId)).toEqual({ state: 'dispatched', seq: 1 });
    // The owner, at the right seq, moves it: back to pending, the next assignment numbered 2.
    expect(await reassignAttempt(pool, attemptId, WORKER, null, { owner, fromSeq: 1 })).toBe(2);
    expect((await seqs([attemptId])).get(attemptId)).toEqual({ state: 'pending', seq: 2 });
  });
});

describe('a dispatch whose answer is lost', () => {
  it('is confirmed with the worker in requests of at most 1000 attempts, then sent again as the next assignment', async () => {
    const owner = newOwner();
    const runId = await newRun(owner);
    const ids = await dispatchedAttempts(owner, runId, 1001);
    const dispatchSizes: number[] = [];
    const revokeSizes: number[] = [];
    const asked = new Set<string>();
    const accepted = new Map<string, number>();
    const client: WorkerClient = {
      dispatch: async (address, attempts: AttemptRequest[]) => {
        dispatchSizes.push(attempts.length);
        // The first time every answer is lost after the request went out.
        if (attempts.every((a) => a.dispatchSeq === 1))
          throw new WorkerUnreachableError(address, new Error('socket hang up'), true);
        for (const a of attempts) accepted.set(a.attemptId, a.dispatchSeq);
        return attempts.map((a) => ({ attemptId: a.attemptId, outcome: 'accepted' as const }));
      },
      revoke: async (_address, workerKey, attempts) => {
        expect(workerKey).toBe(WORKER);
        revokeSizes.push(attempts.length);
        for (const a of attempts) asked.add(a.attemptId);
        return new Map(attempts.map((a) => [a.attemptId, 'revoked']));
      },
      cancel: async () => false,
      close: () => {},
    };
    const d = driver(owner, client);
    await d.start();
    d.wake([runId]);
    await eventually(() => expect(accepted.size).toBe(1001), { timeoutMs: 20_000 });
    await d.stop();
    expect(Math.max(...dispatchSizes)).toBeLessThanOrEqual(1000);
    expect(Math.max(...revokeSizes)).toBeLessThanOrEqual(1000);
    expect(asked.size).toBe(1001);
    // Every attempt was sent again only after the worker said it did not have it, as a later
    // assignment than the revoked one (back to pending, then assigned: seq 3), which the row records.
    expect(new Set(accepted.values())).toEqual(new Set([3]));
    const rows = await seqs(ids);
    expect([...rows.values()].every((r) => r.state === 'dispatched' && r.seq === 3)).toBe(true);
  });

  it('held while the worker cannot be asked, is asked about again after the driver is stopped and started', async () => {
    const owner = newOwner();
    const runId = await newRun(owner);
    const [id] = await dispatchedAttempts(owner, runId, 1);
    let reachable = false;
    const sent: number[] = [];
    const client: WorkerClient = {
      dispatch: async (address, attempts) => {
        if (!reachable) throw new WorkerUnreachableError(address, new Error('timeout'), true);
        for (const a of attempts) sent.push(a.dispatchSeq);
        return attempts.map((a) => ({ attemptId: a.attemptId, outcome: 'accepted' as const }));
      },
      revoke: async (address) => {
        throw new WorkerUnreachableError(address, new Error('timeout'));
      },
      cancel: async () => false,
      close: () => {},
    };
    const d = driver(owner, client);
    await d.start();
    d.wake([runId]);
    // Held: still dispatched to the worker, not moved.
    await new Promise((r) => setTimeout(r, 500));
    expect((await seqs([id as number])).get(id as number)).toEqual({ state: 'dispatched', seq: 1 });
    // Self-fencing and back: the held attempt is not forgotten.
    await d.stop();
    reachable = true;
    await d.start();
    d.wake([runId]);
    await eventually(() => expect(sent).toEqual([1]), { timeoutMs: 10_000 });
    await d.stop();
  });
});
