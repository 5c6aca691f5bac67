import { FencedWriteError } from '@sched/core';
import type { LeadershipTerm } from '@sched/registry';
import {
  advanceLeaderEpoch,
  type LeaderEpoch,
  pruneEndedRuns,
  pruneRunsBatch,
  retentionCutoff,
  withTransaction,
} from '@sched/store';
import type pg from 'pg';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { RunRetention } from '../src/retention/run-retention.js';
import { applyScheduledWorkflows, migratedDatabase, quietLogger } from './scheduler-fixtures.js';

// Retention of ended runs (docs/operations.md#retention) against a real PostgreSQL: the leader's
// RunRetention deletes runs that ended longer ago than db.retention, with their attempts, in
// bounded batches, fenced by its leader epoch; recent, active and still-referenced runs stay.

const DAY_MS = 86_400_000;
const RETENTION_MS = 30 * DAY_MS;
const EPOCH: LeaderEpoch = { clusterId: 'zk-retention', czxid: 100 };

let pool: pg.Pool;
let drop: () => Promise<void>;
let workflowId: number;

beforeAll(async () => {
  const db = await migratedDatabase();
  pool = db.pool;
  drop = db.drop;
  const ids = await applyScheduledWorkflows(pool, 'retention', 1);
  workflowId = ids.get('retention-0') as number;
  expect(await advanceLeaderEpoch(pool, EPOCH, 'leader:1_1')).toBe(true);
});

afterAll(async () => {
  await drop?.();
});

beforeEach(async () => {
  await pool.query('DELETE FROM commands');
  await pool.query('DELETE FROM runs');
});

/** A term of `epoch` that a test can end. */
function termOf(epoch: LeaderEpoch): LeadershipTerm & { end(): void } {
  const ended = new AbortController();
  return {
    token: BigInt(epoch.czxid),
    clusterId: epoch.clusterId,
    sequence: 0,
    node: '/sched/election/x-n_0000000000',
    sessionId: '0x1',
    generation: 1,
    startedAt: 0,
    signal: ended.signal,
    check() {
      if (ended.signal.aborted) throw new Error('leadership ended');
    },
    end: () => ended.abort(),
  };
}

interface RunSpec {
  count?: number;
  state: 'pending' | 'running' | 'succeeded' | 'failed' | 'cancelled';
  /** How long ago it ended (runs i = 0.. end one second apart, the first the most recent); none for active runs. */
  endedAgoMs?: number;
  attempts?: number;
  attemptState?: string;
  rerunOf?: number;
}

/** Inserts runs of the test workflow, each with `attempts` attempts; returns their ids, most recently ended first. */
async function insertRuns(spec: RunSpec): Promise<number[]> {
  const { rows } = await pool.query<{ id: number }>(
    `INSERT INTO runs (workflow_id, workflow_version, trigger, state, rerun_of, created_at, started_at, ended_at)
     SELECT $1, 1, 'manual', $2, $3, now() - interval '60 days', now() - interval '60 days',
            CASE WHEN $4::float8 IS NULL THEN NULL
                 ELSE now() - ($4::float8 + i * 1000) * interval '1 millisecond' END
       FROM generate_series(0, $5 - 1) AS i ORDER BY i
     RETURNING id`,
    [workflowId, spec.state, spec.rerunOf ?? null, spec.endedAgoMs ?? null, spec.count ?? 1],
  );
  const ids = rows.map((r) => r.id);
  const attempts = spec.attempts ?? 2;
  if (attempts > 0) {
    await pool.query(
      `INSERT INTO task_attempts (run_id, task_name, attempt, state)
       SELECT run_id, 'only', n, $3 FROM unnest($1::bigint[]) AS run_id, generate_series(1, $2) AS n`,
      [ids, attempts, spec.attemptState ?? 'succeeded'],
    );
  }
  return ids;
}

async function existing(ids: number[]): Promise<number[]> {
  const { rows } = await pool.query<{ id: number }>(
    'SELECT id FROM runs WHERE id = ANY($1::bigint[]) ORDER BY id',
    [ids],
  );
  return rows.map((r) => r.id);
}

async function count(table: 'runs' | 'task_attempts' | 'commands'): Promise<number> {
  const { rows } = await pool.query<{ n: number }>(`SELECT count(*)::int AS n FROM ${table}`);
  return rows[0]?.n ?? 0;
}

const sorted = (ids: number[]) => [...ids].sort((a, b) => a - b);

describe('RunRetention', () => {
  it('deletes ended runs older than the retention with their attempts, in bounded batches; recent, active, in-flight and command-named runs stay', async () => {
    const old = await insertRuns({ count: 1200, state: 'succeeded', endedAgoMs: 40 * DAY_MS });
    const oldFailed = await insertRuns({ count: 600, state: 'failed', endedAgoMs: 31 * DAY_MS });
    const oldCancelled = await insertRuns({ count: 700, state: 'cancelled', endedAgoMs: 50 * DAY_MS });
    const recent = await insertRuns({ count: 5, state: 'succeeded', endedAgoMs: 29 * DAY_MS });
    const active = [
      ...(await insertRuns({ state: 'pending', attempts: 0 })),
      ...(await insertRuns({ state: 'running', attemptState: 'running' })),
    ];
    // Ended long ago, but an attempt is still in flight: kept until it ends.
    const inFlight = await insertRuns({
      state: 'failed',
      endedAgoMs: 40 * DAY_MS,
      attemptState: 'running',
    });
    // Ended long ago, but a re-run of it is requested and not yet claimed: kept with its command.
    const named = await insertRuns({ state: 'failed', endedAgoMs: 40 * DAY_MS });
    await pool.query(`INSERT INTO commands (kind, run_id) VALUES ('rerun', $1)`, [named[0]]);

    const batches: number[] = [];
    const retention = new RunRetention({
      pool,
      retentionMs: RETENTION_MS,
      batchSize: 1000,
      pauseMs: 20,
      maxRunsPerMinute: 0,
      logger: quietLogger,
      onPruned: (b) => batches.push(b.runs),
    });
    const total = await retention.pass(termOf(EPOCH));

    expect(total).toEqual({ runs: 2500, attempts: 5000 });
    expect(batches).toEqual([1000, 1000, 500]);
    expect(await existing([...old, ...oldFailed, ...oldCancelled])).toEqual([]);
    const kept = [...recent, ...active, ...inFlight, ...named];
    expect(await existing(kept)).toEqual(sorted(kept));
    expect(await count('runs')).toBe(kept.length);
    // The attempts went with their runs; the kept runs keep theirs.
    expect(await count('task_attempts')).toBe(2 * (recent.length + 1 + inFlight.length + named.length));
    expect(await count('commands')).toBe(1);

    // Nothing left to do: a second pass deletes nothing.
    expect(await retention.pass(termOf(EPOCH))).toEqual({ runs: 0, attempts: 0 });
  });

  it('batches go oldest first, and the pace is capped per minute', async () => {
    const ids = await insertRuns({ count: 2000, state: 'succeeded', endedAgoMs: 40 * DAY_MS, attempts: 1 });
    const endedBefore = await retentionCutoff(pool, RETENTION_MS);
    // Stopped after 500: the 500 oldest (the last inserted) are gone, the 1500 newer ones stay.
    const first = await pruneEndedRuns(pool, { endedBefore, batchSize: 200, pauseMs: 0, maxRuns: 500 });
    expect(first).toEqual({ runs: 500, attempts: 500 });
    expect(await existing(ids)).toEqual(sorted(ids.slice(0, 1500)));

    // 1500 runs in batches of 250 at most 60,000 a minute (1,000 a second): six batches, five pauses of >= 250 ms.
    const started = Date.now();
    const sizes: number[] = [];
    const rest = await pruneEndedRuns(pool, {
      endedBefore,
      batchSize: 250,
      pauseMs: 0,
      maxRunsPerMinute: 60_000,
      onBatch: (b) => sizes.push(b.runs),
    });
    expect(rest).toEqual({ runs: 1500, attempts: 1500 });
    expect(sizes).toEqual([250, 250, 250, 250, 250, 250]);
    expect(Date.now() - started).toBeGreaterThanOrEqual(1_200);
  });

  it('a run that a newer run re-ran is deleted; the newer run stays, its rerun_of cleared, its attempts intact', async () => {
    const [original] = (await insertRuns({ state: 'failed', endedAgoMs: 45 * DAY_MS })) as [number];
    const [rerun] = (await insertRuns({ state: 'succeeded', endedAgoMs: 2 * DAY_MS, rerunOf: original })) as [
      number,
    ];
    // An older re-run of the same run, itself past the retention: deleted too.
    const [oldRerun] = (await insertRuns({
      state: 'failed',
      endedAgoMs: 35 * DAY_MS,
      rerunOf: original,
    })) as [number];
    const retention = new RunRetention({ pool, retentionMs: RETENTION_MS, logger: quietLogger });
    expect(await retention.pass(termOf(EPOCH))).toEqual({ runs: 2, attempts: 4 });
    expect(await existing([original, rerun, oldRerun])).toEqual([rerun]);
    const { rows } = await pool.query('SELECT rerun_of FROM runs WHERE id = $1', [rerun]);
    expect(rows[0]?.rerun_of).toBeNull();
    expect(await count('task_attempts')).toBe(2);
  });

  it('a re-run requested during a batch is never dropped: it waits for the batch and fails on the deleted run, or the run is skipped', async () => {
    const [a, b] = (await insertRuns({ count: 2, state: 'succeeded', endedAgoMs: 40 * DAY_MS })) as [
      number,
      number,
    ];
    const endedBefore = await retentionCutoff(pool, RETENTION_MS);

    // 1. A command for `b` is being inserted (its foreign key check holds `b`) when the batch
    //    starts: the batch skips `b`; once the command commits, `b` is kept for it.
    const requester = await pool.connect();
    try {
      await requester.query('BEGIN');
      await requester.query(`INSERT INTO commands (kind, run_id) VALUES ('rerun', $1)`, [b]);
      const batch = await withTransaction(pool, (tx) => pruneRunsBatch(tx, endedBefore, 10));
      expect(batch).toMatchObject({ runs: 1, attempts: 2 });
      await requester.query('COMMIT');
    } finally {
      requester.release();
    }
    expect(await existing([a, b])).toEqual([b]);
    expect(await pruneEndedRuns(pool, { endedBefore })).toEqual({ runs: 0, attempts: 0 });

    // 2. The batch holds `c` when the command for it is inserted: the insert waits for the batch,
    //    then fails on the foreign key (the API answers 404) rather than being deleted with it.
    const [c] = (await insertRuns({ state: 'succeeded', endedAgoMs: 40 * DAY_MS })) as [number];
    const pruner = await pool.connect();
    let insert: Promise<unknown> | undefined;
    try {
      await pruner.query('BEGIN');
      expect(await pruneRunsBatch(pruner, endedBefore, 10)).toMatchObject({ runs: 1 });
      insert = pool.query(`INSERT INTO commands (kind, run_id) VALUES ('rerun', $1)`, [c]);
      const settled = await Promise.race([
        insert.then(
          () => 'inserted',
          () => 'failed',
        ),
        new Promise((r) => setTimeout(() => r('waiting'), 300)),
      ]);
      expect(settled).toBe('waiting');
      await pruner.query('COMMIT');
    } finally {
      pruner.release();
    }
    await expect(insert).rejects.toMatchObject({ code: '23503' });
    expect(await existing([c])).toEqual([]);
    expect(await count('commands')).toBe(1);
  });

  it('is fenced by the leader epoch: a deposed leader deletes nothing; an ended term stops', async () => {
    const ids = await insertRuns({ count: 3, state: 'succeeded', endedAgoMs: 40 * DAY_MS });
    const newer: LeaderEpoch = { ...EPOCH, czxid: EPOCH.czxid + 1 };
    const retention = new RunRetention({ pool, retentionMs: RETENTION_MS, logger: quietLogger });
    try {
      expect(await advanceLeaderEpoch(pool, newer, 'leader:2_2')).toBe(true);
      await expect(retention.pass(termOf(EPOCH))).rejects.toBeInstanceOf(FencedWriteError);
      expect(await existing(ids)).toEqual(sorted(ids));

      const ended = termOf(newer);
      ended.end();
      await expect(retention.pass(ended)).rejects.toThrow('leadership ended');
      expect(await existing(ids)).toEqual(sorted(ids));

      expect(await retention.pass(termOf(newer))).toMatchObject({ runs: 3 });
    } finally {
      // Back to the epoch the other tests use (a test-only reset of the recorded epoch).
      await pool.query('UPDATE cluster_state SET leader_epoch = $1 WHERE id', [EPOCH.czxid]);
    }
  });

  it('run(): passes every interval until the term ends; db.retention 0 keeps everything', async () => {
    const ids = await insertRuns({ count: 3, state: 'succeeded', endedAgoMs: 40 * DAY_MS });
    const forever = new RunRetention({ pool, retentionMs: 0, startDelayMs: 0, logger: quietLogger });
    await forever.run(termOf(EPOCH)); // returns at once
    expect(await existing(ids)).toEqual(sorted(ids));

    const pruned: number[] = [];
    const retention = new RunRetention({
      pool,
      retentionMs: RETENTION_MS,
      startDelayMs: 0,
      intervalMs: 50,
      logger: quietLogger,
      onPruned: (b) => pruned.push(b.runs),
    });
    const term = termOf(EPOCH);
    const running = retention.run(term);
    const deadline = Date.now() + 10_000;
    while (pruned.length === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    expect(pruned).toEqual([3]);
    // Ended runs of a later pass are found by the next one.
    const later = await insertRuns({ count: 2, state: 'failed', endedAgoMs: 40 * DAY_MS });
    while (pruned.length === 1 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    expect(pruned).toEqual([3, 2]);
    expect(await existing(later)).toEqual([]);
    term.end();
    await running;
  });
});
