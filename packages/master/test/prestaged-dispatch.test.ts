/**
 * Pre-staged dispatch against a real PostgreSQL (the worker is a recording client): the first
 * tasks of a pre-staged fire are persisted in the fire's transaction before the fire time and sent
 * only after it commits — never before the fire time, and never when the fire rolls back.
 */

import type { AttemptRequest } from '@sched/protocol';
import { applyDefinitions, compileDefinitions, enqueueCommand } from '@sched/store';
import { eventually, registerCleanup } from '@sched/testkit';
import type pg from 'pg';
import { beforeAll, describe, expect, it } from 'vitest';
import type { DispatchAnswer, WorkerClient } from '../src/dispatch/worker-client.js';
import { WorkerRouter } from '../src/routing/worker-router.js';
import { RunDriver } from '../src/runs/run-driver.js';
import { CommandProcessor } from '../src/scheduler/command-processor.js';
import { ScheduleFirer } from '../src/scheduler/schedule-firer.js';
import { workerView } from './driver-fixtures.js';
import { applyScheduledWorkflows, migratedDatabase, quietLogger } from './scheduler-fixtures.js';

let pool: pg.Pool;
const WORKER = '127.0.0.1:7701_1700000000007';
let masters = 0;

beforeAll(async () => {
  const db = await migratedDatabase();
  pool = db.pool;
  registerCleanup('drop database', db.drop);
});

/** A worker client that records what it was sent and when, and accepts everything. */
class RecordingClient implements WorkerClient {
  readonly sent: { at: number; request: AttemptRequest }[] = [];
  async dispatch(_address: string, attempts: AttemptRequest[]): Promise<DispatchAnswer[]> {
    const at = Date.now();
    for (const request of attempts) this.sent.push({ at, request });
    return attempts.map((a) => ({ attemptId: a.attemptId, outcome: 'accepted' }));
  }
  async cancel(): Promise<boolean> {
    return true;
  }
  async revoke(): Promise<Map<string, string>> {
    return new Map();
  }
  close(): void {}
}

/** A master's firer and driver wired as MasterNode wires them, with a switchable lease. */
function master(client: RecordingClient) {
  const key = `127.0.0.1:${7800 + ++masters}_1700000000000`;
  const lease = { valid: true };
  const woken: number[] = [];
  const prepared: number[] = [];
  const driver = new RunDriver({
    db: pool,
    nodeKey: key,
    router: new WorkerRouter(),
    workers: () => [workerView(WORKER, 1_000n, 10_000)],
    client,
    leaseValid: () => lease.valid,
    logger: quietLogger,
    sweepIntervalMs: 60_000,
  });
  const firer = new ScheduleFirer({
    pool,
    nodeKey: key,
    liveMasters: () => [key],
    leaseValid: () => lease.valid,
    logger: quietLogger,
    prepareRuns: (c, runs) => driver.prepareFired(c, runs),
    onRunsCreated: (runs) => {
      prepared.push(...runs.filter((r) => r.prepared).map((r) => r.runId));
      const rest = runs.filter((r) => !r.prepared && !r.queued).map((r) => r.runId);
      woken.push(...rest);
      driver.wake(rest);
    },
  });
  registerCleanup('stop firer', () => firer.stop());
  registerCleanup('stop driver', () => driver.stop());
  return { key, lease, driver, firer, woken, prepared };
}

async function attemptsOf(prefix: string) {
  const { rows } = await pool.query<{
    run_id: number;
    state: string;
    run_state: string;
    fire_ms: number;
    dispatched_ms: number;
    started_ms: number | null;
  }>(
    `SELECT a.run_id, a.state, r.state AS run_state,
            (extract(epoch FROM r.fire_time) * 1000)::float8 AS fire_ms,
            (extract(epoch FROM a.dispatched_at) * 1000)::float8 AS dispatched_ms,
            (extract(epoch FROM r.started_at) * 1000)::float8 AS started_ms
       FROM task_attempts a JOIN runs r ON r.id = a.run_id JOIN workflows w ON w.id = r.workflow_id
      WHERE w.name LIKE $1`,
    [`${prefix}-%`],
  );
  return rows;
}

describe('pre-staged dispatch', () => {
  it('persists the first attempts with the fire and sends them at its commit, never before the fire time', async () => {
    await applyScheduledWorkflows(pool, 'prep', 20, { cron: '* * * * * *' });
    const client = new RecordingClient();
    const m = master(client);
    await m.driver.start();
    m.firer.start();
    await eventually(() => expect(client.sent.length).toBeGreaterThanOrEqual(40), { timeoutMs: 10_000 });
    await m.firer.stop();
    await m.driver.stop();

    const rows = await attemptsOf('prep');
    const byRun = new Map(rows.map((r) => [r.run_id, r]));
    for (const { at, request } of client.sent) {
      const row = byRun.get(Number(request.runId));
      expect(row, `attempt of run ${request.runId} was sent but is not in the database`).toBeDefined();
      // Sent only after the commit, which is at the fire time: never before it.
      expect(at).toBeGreaterThanOrEqual(row?.fire_ms ?? Number.POSITIVE_INFINITY);
      // Recorded as dispatched at (not before) the fire time; the run is running from its fire time.
      expect(row?.dispatched_ms).toBeGreaterThanOrEqual(row?.fire_ms ?? Number.POSITIVE_INFINITY);
      expect(row?.started_ms).toBeGreaterThanOrEqual(row?.fire_ms ?? Number.POSITIVE_INFINITY);
      expect(row?.run_state).toBe('running');
    }
    // Each attempt sent once: the driver did not send them again on a first drive.
    const ids = client.sent.map((s) => s.request.attemptId);
    expect(new Set(ids).size).toBe(ids.length);
    // Fires staged before their time were prepared, and a prepared run needed no wake-up (a first
    // fire that came too close to the firer's start is not pre-staged: it is driven as usual).
    expect(m.prepared.length).toBeGreaterThan(0);
    expect(m.woken.filter((id) => m.prepared.includes(id))).toEqual([]);
  });

  it('a fire that rolls back (lease lost at the fire time) sends nothing and leaves no attempt', async () => {
    await applyScheduledWorkflows(pool, 'rollback', 10, { cron: '* * * * * *' });
    const client = new RecordingClient();
    const m = master(client);
    await m.driver.start();
    // The lease is valid while the fire is staged (the attempts are inserted in its transaction),
    // and lost by the fire time: the commit is refused and everything rolls back.
    const original = m.driver.prepareFired.bind(m.driver);
    let staged = 0;
    m.driver.prepareFired = async (c, runs) => {
      const prepared = await original(c, runs);
      staged += prepared?.runIds.size ?? 0;
      m.lease.valid = false;
      return prepared;
    };
    m.firer.start();
    await eventually(() => expect(staged).toBeGreaterThan(0), { timeoutMs: 10_000 });
    // Past the fire time of what was staged, and then some.
    await new Promise((r) => setTimeout(r, 1_500));
    await m.firer.stop();
    await m.driver.stop();
    expect(client.sent).toEqual([]);
    expect(await attemptsOf('rollback')).toEqual([]);
    const { rows } = await pool.query<{ n: number }>(
      `SELECT count(*)::int AS n FROM runs r JOIN workflows w ON w.id = r.workflow_id WHERE w.name LIKE 'rollback-%'`,
    );
    expect(rows[0]?.n).toBe(0);
  });

  it('manual triggers: the first tasks are persisted in the claiming transaction and sent at its commit, with their params', async () => {
    await applyDefinitions(
      pool,
      compileDefinitions([{ value: { name: 'manual-prep', tasks: [{ name: 'only', type: 'noop' }] } }]),
    );
    const { rows } = await pool.query<{ id: number }>(`SELECT id FROM workflows WHERE name = 'manual-prep'`);
    const workflowId = rows[0]?.id as number;
    const client = new RecordingClient();
    const m = master(client);
    await m.driver.start();
    const commands = new CommandProcessor({
      pool,
      nodeKey: m.key,
      leaseValid: () => m.lease.valid,
      logger: quietLogger,
      prepareRuns: (c, runs) => m.driver.prepareFired(c, runs),
    });
    for (let i = 0; i < 3; i++) {
      await enqueueCommand(pool, { kind: 'trigger', workflowId, params: { DAY: `2026-01-0${i + 1}` } });
    }
    const done = await commands.drain();
    expect(done).toHaveLength(3);
    // Sent right after the commit, one attempt per run, each with its run's params.
    expect(client.sent.map((s) => s.request.params.DAY).sort()).toEqual([
      '2026-01-01',
      '2026-01-02',
      '2026-01-03',
    ]);
    for (const d of done) expect(d.prepared?.has(d.runIds[0] as number)).toBe(true);
    const states = await pool.query<{ run_state: string; attempt_state: string }>(
      `SELECT r.state AS run_state, a.state AS attempt_state FROM runs r JOIN task_attempts a ON a.run_id = r.id
        WHERE r.id = ANY($1::bigint[])`,
      [done.flatMap((d) => d.runIds)],
    );
    expect(states.rows).toEqual(Array(3).fill({ run_state: 'running', attempt_state: 'dispatched' }));
    // Nothing sent twice when the runs are driven (a report would wake them).
    m.driver.wake(done.flatMap((d) => d.runIds));
    await new Promise((r) => setTimeout(r, 300));
    expect(client.sent).toHaveLength(3);
    await m.driver.stop();
  });
});
