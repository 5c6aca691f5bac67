import { CommandProcessor } from '@sched/master';
import { claimNextCommand, countCommands, enqueueCommand } from '@sched/store';
import type pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  applyScheduledWorkflows,
  migratedDatabase,
  quietLogger,
  runsOf,
  sleep,
  soleFirer,
} from './scheduler-fixtures.js';

// Misfire and concurrency policies and durable commands, against a real PostgreSQL.

let pool: pg.Pool;
let drop: () => Promise<void>;
beforeAll(async () => {
  ({ pool, drop } = await migratedDatabase());
});
afterAll(async () => drop?.());

const OPTIONS = { scanIntervalMs: 200, lookAheadMs: 2000, queueSweepMs: 200 };
const firer = (nodeKey: string) => soleFirer(pool, nodeKey, OPTIONS);

/** Fire times in seconds relative to the first, and the trigger of each. */
function timeline(runs: { fire_ms: number; trigger: string }[]) {
  const first = runs[0]?.fire_ms ?? 0;
  return runs.map((r) => ({ s: (r.fire_ms - first) / 1000, trigger: r.trigger }));
}

/** Gaps (in seconds) between consecutive fire times that are larger than one second. */
const gaps = (runs: { fire_ms: number }[]) =>
  runs.slice(1).flatMap((r, i) => {
    const d = (r.fire_ms - (runs[i] as { fire_ms: number }).fire_ms) / 1000;
    return d > 1 ? [d] : [];
  });

describe('misfire policies after every master was stopped for 10 s', () => {
  it('skip, fire-once-now and fire-all (unbounded and bounded) each do what they say', async () => {
    await applyScheduledWorkflows(pool, 'mf-skip', 1, { misfire: 'skip', misfireThreshold: '2s' });
    await applyScheduledWorkflows(pool, 'mf-once', 1, { misfire: 'fire-once-now', misfireThreshold: '2s' });
    await applyScheduledWorkflows(pool, 'mf-all', 1, {
      misfire: 'fire-all',
      misfireThreshold: '2s',
      maxCatchUp: 100,
    });
    await applyScheduledWorkflows(pool, 'mf-cap', 1, {
      misfire: 'fire-all',
      misfireThreshold: '2s',
      maxCatchUp: 3,
    });
    const first = firer('mf-1');
    first.start();
    await sleep(3000);
    await first.stop();
    const stoppedAt = Date.now();
    await sleep(10_000);
    const second = firer('mf-2');
    second.start();
    await sleep(3000);
    await second.stop();
    const restartedAt = stoppedAt + 10_000;

    const skip = await runsOf(pool, 'mf-skip');
    expect(skip.filter((r) => r.trigger === 'misfire')).toEqual([]);
    // One hole of at least the 10 s outage; before and after, every second.
    const skipGaps = gaps(skip);
    expect(skipGaps).toHaveLength(1);
    expect(skipGaps[0]).toBeGreaterThanOrEqual(10);

    const once = await runsOf(pool, 'mf-once');
    const onceMisfires = once.filter((r) => r.trigger === 'misfire');
    expect(onceMisfires).toHaveLength(1);
    // The one catch-up run is for the most recent missed second, i.e. around the restart.
    expect(Math.abs((onceMisfires[0] as { fire_ms: number }).fire_ms - restartedAt)).toBeLessThan(1500);
    expect(gaps(once)).toHaveLength(1);

    const all = await runsOf(pool, 'mf-all');
    expect(gaps(all), JSON.stringify(timeline(all))).toEqual([]); // every second, outage included
    const allMisfires = all.filter((r) => r.trigger === 'misfire').length;
    expect(allMisfires).toBeGreaterThanOrEqual(10);
    expect(allMisfires).toBeLessThanOrEqual(14);

    const cap = await runsOf(pool, 'mf-cap');
    const capMisfires = cap.filter((r) => r.trigger === 'misfire');
    expect(capMisfires).toHaveLength(3);
    const capTimes = capMisfires.map((r) => r.fire_ms);
    expect(capTimes[1]! - capTimes[0]!).toBe(1000);
    expect(capTimes[2]! - capTimes[1]!).toBe(1000);
    expect(gaps(cap)).toHaveLength(1); // the older missed fires were dropped
    expect(second.stats.droppedMisfires).toBeGreaterThan(0);
  }, 40_000);
});

describe('concurrency policies (runs stay pending: no run driver in this test)', () => {
  it('allow: every fire makes a run', async () => {
    await applyScheduledWorkflows(pool, 'cc-allow', 1, { concurrency: 'allow' });
    const f = firer('cc-allow-m');
    f.start();
    await sleep(3500);
    await f.stop();
    const runs = await runsOf(pool, 'cc-allow');
    expect(runs.length).toBeGreaterThanOrEqual(3);
    expect(runs.every((r) => r.state === 'pending' && !r.queued)).toBe(true);
  }, 20_000);

  it('forbid: no new run while one is active; a new one once it ends', async () => {
    await applyScheduledWorkflows(pool, 'cc-forbid', 1, { concurrency: 'forbid' });
    const f = firer('cc-forbid-m');
    f.start();
    await sleep(3500);
    let runs = await runsOf(pool, 'cc-forbid');
    expect(runs).toHaveLength(1);
    await pool.query(`UPDATE runs SET state = 'succeeded', ended_at = now() WHERE id = $1`, [runs[0]!.id]);
    await sleep(2000);
    await f.stop();
    runs = await runsOf(pool, 'cc-forbid');
    expect(runs.map((r) => r.state)).toEqual(['succeeded', 'pending']);
  }, 20_000);

  it('replace: pending runs are cancelled, a running one is asked to cancel, the newest stays', async () => {
    await applyScheduledWorkflows(pool, 'cc-replace', 1, { concurrency: 'replace' });
    const f = firer('cc-replace-m');
    f.start();
    await sleep(3500);
    let runs = await runsOf(pool, 'cc-replace');
    expect(runs.length).toBeGreaterThanOrEqual(3);
    const active = runs.filter((r) => r.state === 'pending');
    expect(active).toHaveLength(1);
    expect(runs.slice(0, -1).every((r) => r.state === 'cancelled' || r.id === active[0]!.id)).toBe(true);
    // The current one starts running; the next fire must flag it rather than end it.
    const { rows } = await pool.query(
      `UPDATE runs SET state = 'running' WHERE id = (SELECT max(r.id) FROM runs r JOIN workflows w ON w.id = r.workflow_id WHERE w.name = 'cc-replace-0') RETURNING id`,
    );
    const runningId = rows[0].id as number;
    await sleep(1500);
    await f.stop();
    runs = await runsOf(pool, 'cc-replace');
    const running = runs.find((r) => r.id === runningId)!;
    expect(running.state).toBe('running');
    expect(running.cancel_requested_at).not.toBeNull();
    expect(runs.filter((r) => r.state === 'pending').length).toBe(1);
  }, 20_000);

  it('queue: later fires wait (queued) and start one at a time, oldest first', async () => {
    await applyScheduledWorkflows(pool, 'cc-queue', 1, { concurrency: 'queue' });
    const f = firer('cc-queue-m');
    f.start();
    await sleep(3500);
    let runs = await runsOf(pool, 'cc-queue');
    expect(runs.length).toBeGreaterThanOrEqual(3);
    expect(runs[0]!.queued).toBe(false);
    expect(runs.slice(1).every((r) => r.queued)).toBe(true);
    // The first ends; the sweep releases exactly the next one (the oldest queued).
    await pool.query(`UPDATE runs SET state = 'succeeded', ended_at = now() WHERE id = $1`, [runs[0]!.id]);
    await sleep(800);
    await f.stop();
    runs = await runsOf(pool, 'cc-queue');
    const unqueuedActive = runs.filter((r) => r.state === 'pending' && !r.queued);
    expect(unqueuedActive.map((r) => r.id)).toEqual([runs[1]!.id]);
  }, 20_000);
});

describe('durable commands', () => {
  it('manual trigger (with params), re-run and backfill create their runs; each command once', async () => {
    const ids = await applyScheduledWorkflows(pool, 'cmd', 1, { cron: '0 0 * * * ?' });
    const workflowId = ids.get('cmd-0')!;
    const p1 = new CommandProcessor({
      pool,
      nodeKey: 'cmd-m1',
      leaseValid: () => true,
      logger: quietLogger,
      options: { backfillChunk: 10 },
    });
    const p2 = new CommandProcessor({
      pool,
      nodeKey: 'cmd-m2',
      leaseValid: () => true,
      logger: quietLogger,
      options: { backfillChunk: 10 },
    });

    await enqueueCommand(pool, { kind: 'trigger', workflowId, params: { day: '2026-01-01' } });
    const [trig] = await p1.drain();
    expect(trig?.runIds).toHaveLength(1);
    let runs = await runsOf(pool, 'cmd');
    expect(runs).toHaveLength(1);
    const manual = await pool.query(
      'SELECT trigger, params, owner, fire_time, command_id FROM runs WHERE id = $1',
      [trig!.runIds[0]],
    );
    expect(manual.rows[0]).toMatchObject({
      trigger: 'manual',
      params: { day: '2026-01-01' },
      owner: 'cmd-m1',
      fire_time: null,
      command_id: trig!.commandId,
    });

    await enqueueCommand(pool, { kind: 'rerun', runId: trig!.runIds[0]!, params: { extra: 'x' } });
    const [rerun] = await p1.drain();
    const rr = await pool.query('SELECT trigger, params, rerun_of FROM runs WHERE id = $1', [
      rerun!.runIds[0],
    ]);
    expect(rr.rows[0]).toEqual({
      trigger: 'rerun',
      params: { day: '2026-01-01', extra: 'x' },
      rerun_of: trig!.runIds[0],
    });

    // Backfill of one day of an hourly schedule, inclusive at both ends: 25 fire times, in chunks of 10.
    await enqueueCommand(pool, {
      kind: 'backfill',
      workflowId,
      rangeStartMs: Date.parse('2025-01-01T00:00:00Z'),
      rangeEndMs: Date.parse('2025-01-02T00:00:00Z'),
    });
    // 50 triggers, drained by two processors at once: each exactly once.
    for (let i = 0; i < 50; i++)
      await enqueueCommand(pool, { kind: 'trigger', workflowId, params: { i: String(i) } });
    const [d1, d2] = await Promise.all([p1.drain(), p2.drain()]);
    expect(d1.length + d2.length).toBe(53); // 3 backfill chunks + 50 triggers
    expect(await countCommands(pool)).toBe(0);
    runs = await runsOf(pool, 'cmd');
    const backfill = runs
      .filter((r) => r.trigger === 'backfill')
      .map((r) => new Date(r.fire_ms).toISOString());
    expect(backfill).toHaveLength(25);
    expect(backfill[0]).toBe('2025-01-01T00:00:00.000Z');
    expect(backfill[24]).toBe('2025-01-02T00:00:00.000Z');
    const triggered = await pool.query(
      `SELECT params->>'i' AS i FROM runs WHERE trigger = 'manual' AND params ? 'i'`,
    );
    expect(triggered.rows.map((r) => Number(r.i)).sort((a, b) => a - b)).toEqual(
      Array.from({ length: 50 }, (_, i) => i),
    );
  }, 30_000);

  it('a claim rolled back (the master failed mid-way) leaves the command for another master', async () => {
    const ids = await applyScheduledWorkflows(pool, 'cmdfail', 1, { cron: '0 0 * * * ?' });
    await enqueueCommand(pool, { kind: 'trigger', workflowId: ids.get('cmdfail-0')! });
    // A master claims it and fails before committing (its transaction rolls back).
    const client = await pool.connect();
    try {
      await client.query('BEGIN');
      expect(await claimNextCommand(client)).not.toBeNull();
      // While the claim is open, another master sees nothing to claim (SKIP LOCKED), and does not block.
      const other = new CommandProcessor({
        pool,
        nodeKey: 'cmdfail-other',
        leaseValid: () => true,
        logger: quietLogger,
      });
      expect(await other.drain()).toEqual([]);
      await client.query('ROLLBACK');
    } finally {
      client.release();
    }
    expect(await countCommands(pool)).toBe(1);
    const p = new CommandProcessor({
      pool,
      nodeKey: 'cmdfail-m',
      leaseValid: () => true,
      logger: quietLogger,
    });
    const done = await p.drain();
    expect(done).toHaveLength(1);
    expect(await runsOf(pool, 'cmdfail')).toHaveLength(1);
  }, 20_000);
  it('a started processor claims a new command at once on NOTIFY (no waiting for the poll)', async () => {
    const ids = await applyScheduledWorkflows(pool, 'cmdlisten', 1, { cron: '0 0 * * * ?' });
    const p = new CommandProcessor({
      pool,
      nodeKey: 'cmdlisten-m',
      leaseValid: () => true,
      logger: quietLogger,
      options: { pollIntervalMs: 60_000, listen: true },
    });
    p.start();
    try {
      await sleep(500); // the first (empty) poll and the LISTEN are done
      const sentAt = Date.now();
      await enqueueCommand(pool, { kind: 'trigger', workflowId: ids.get('cmdlisten-0')! });
      while ((await runsOf(pool, 'cmdlisten')).length === 0 && Date.now() - sentAt < 5000) await sleep(20);
      expect(await runsOf(pool, 'cmdlisten')).toHaveLength(1);
      expect(Date.now() - sentAt).toBeLessThan(3000); // far below the 60 s poll interval
    } finally {
      await p.stop();
    }
  }, 20_000);
});
