import { type FiredRun, ScheduleFirer } from '@sched/master';
import type pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  applyScheduledWorkflows,
  migratedDatabase,
  quietLogger,
  runsOf,
  sleep,
  wholeSecondAfter,
} from './scheduler-fixtures.js';

// Exactly-once under churn, in process: three firers share 120 every-second schedules while
// masters leave, come back as new incarnations, and one loses its lease while still listed as
// live. Checked from the database: for every schedule, every second of the window has exactly one
// run. (The same with real master processes killed -9 is a later, process-level test.)

let pool: pg.Pool;
let drop: () => Promise<void>;
beforeAll(async () => {
  ({ pool, drop } = await migratedDatabase());
});
afterAll(async () => drop?.());

const OPTIONS = { scanIntervalMs: 250, lookAheadMs: 2000 };

class FakeCluster {
  readonly live = new Set<string>();
  readonly lease = new Map<string, boolean>();
  readonly firers = new Map<string, ScheduleFirer>();
  readonly created: FiredRun[] = [];

  start(key: string): ScheduleFirer {
    this.live.add(key);
    this.lease.set(key, true);
    const f = new ScheduleFirer({
      pool,
      nodeKey: key,
      liveMasters: () => [...this.live],
      leaseValid: () => this.lease.get(key) === true,
      logger: quietLogger,
      options: OPTIONS,
      onRunsCreated: (runs) => this.created.push(...runs),
    });
    this.firers.set(key, f);
    f.start();
    this.notify();
    return f;
  }

  async stop(key: string): Promise<void> {
    this.live.delete(key);
    await this.firers.get(key)?.stop();
    this.notify();
  }

  notify(): void {
    for (const f of this.firers.values()) f.membershipChanged();
  }
}

describe('exactly-once firing under membership churn', () => {
  it('every schedule has exactly one run for every second of the window', async () => {
    const ids = await applyScheduledWorkflows(pool, 'churn', 120, {
      cron: '* * * * * *',
      misfire: 'fire-all',
      misfireThreshold: '30s',
    });
    expect(ids.size).toBe(120);
    const cluster = new FakeCluster();
    const t0 = Date.now();
    cluster.start('m-a');
    cluster.start('m-b');
    cluster.start('m-c');
    await sleep(3000);
    await cluster.stop('m-b'); // graceful leave: its slot moves to a and c
    await sleep(2000);
    cluster.start('m-b2'); // comes back as a new incarnation
    await sleep(2000);
    const cLostLeaseAt = Date.now();
    cluster.lease.set('m-c', false); // lease lost but still listed as live (ZK has not noticed yet)
    await sleep(2500);
    await cluster.stop('m-c'); // the registry removes it; its schedules are caught up by a and b2
    await sleep(3000);
    const t1 = Date.now();
    await cluster.stop('m-a');
    await cluster.stop('m-b2');

    // The window: whole seconds from the first second after start+1s to 1.5 s before the end.
    const from = wholeSecondAfter(t0 + 1000);
    const to = Math.floor((t1 - 1500) / 1000) * 1000;
    expect(to - from).toBeGreaterThanOrEqual(8_000);
    const runs = await runsOf(pool, 'churn');
    const counts = new Map<string, number>();
    for (const r of runs) {
      const k = `${r.name}@${r.fire_ms}`;
      counts.set(k, (counts.get(k) ?? 0) + 1);
    }
    const problems: string[] = [];
    for (const name of ids.keys()) {
      for (let t = from; t <= to; t += 1000) {
        const n = counts.get(`${name}@${t}`) ?? 0;
        if (n !== 1) problems.push(`${name} ${new Date(t).toISOString()}: ${n} runs`);
      }
    }
    expect(problems.slice(0, 20), `${problems.length} (schedule, second) pairs wrong`).toEqual([]);
    // Every run is owned by a master that was live and held its lease when the run was created.
    const owners = new Set(runs.map((r) => r.owner));
    for (const o of owners) expect(['m-a', 'm-b', 'm-b2', 'm-c']).toContain(o);
    // m-c fired nothing once its lease was invalid (a statement already in flight may commit just after).
    const lateByC = runs.filter((r) => r.owner === 'm-c' && r.created_at.getTime() > cLostLeaseAt + 250);
    expect(lateByC).toEqual([]);
    expect(runs.filter((r) => r.owner === 'm-c').length).toBeGreaterThan(0);
    // m-b2 joined late and took a share: re-slotting happened.
    expect(runs.filter((r) => r.owner === 'm-b2').length).toBeGreaterThan(0);
  }, 60_000);

  it('two masters that both believe they own every schedule still fire each second once (the database is the fence)', async () => {
    await applyScheduledWorkflows(pool, 'split', 30, { cron: '* * * * * *' });
    const make = (key: string) =>
      new ScheduleFirer({
        pool,
        nodeKey: key,
        liveMasters: () => [key],
        leaseValid: () => true,
        logger: quietLogger,
        options: OPTIONS,
      });
    const a = make('split-a');
    const b = make('split-b');
    const t0 = Date.now();
    a.start();
    b.start();
    await sleep(4000);
    const t1 = Date.now();
    await Promise.all([a.stop(), b.stop()]);
    const runs = await runsOf(pool, 'split');
    const from = wholeSecondAfter(t0 + 500);
    const to = Math.floor((t1 - 1000) / 1000) * 1000;
    const perKey = new Map<string, number>();
    for (const r of runs)
      perKey.set(`${r.name}@${r.fire_ms}`, (perKey.get(`${r.name}@${r.fire_ms}`) ?? 0) + 1);
    for (let i = 0; i < 30; i++) {
      for (let t = from; t <= to; t += 1000) expect(perKey.get(`split-${i}@${t}`), `split-${i} ${t}`).toBe(1);
    }
    // Both raced for the same fires; the losers were refused by the CAS, not by luck.
    expect(a.stats.casLost + b.stats.casLost).toBeGreaterThan(0);
  }, 30_000);

  it('a master whose lease is not valid fires nothing', async () => {
    await applyScheduledWorkflows(pool, 'fenced', 5, { cron: '* * * * * *' });
    const f = new ScheduleFirer({
      pool,
      nodeKey: 'fenced-m',
      liveMasters: () => ['fenced-m'],
      leaseValid: () => false,
      logger: quietLogger,
      options: OPTIONS,
    });
    f.start();
    await sleep(2500);
    await f.stop();
    expect(await runsOf(pool, 'fenced')).toEqual([]);
    expect(f.stats.runsCreated).toBe(0);
  }, 20_000);
});

describe('pre-staged fires (executed early, committed at the fire time)', () => {
  it('no run is ever visible before its fire time', async () => {
    await applyScheduledWorkflows(pool, 'vis', 50, { cron: '* * * * * *' });
    const f = new ScheduleFirer({
      pool,
      nodeKey: 'vis-m',
      liveMasters: () => ['vis-m'],
      leaseValid: () => true,
      logger: quietLogger,
      options: { ...OPTIONS, prestageMs: 400 },
    });
    f.start();
    const violations: string[] = [];
    let seen = 0;
    const until = Date.now() + 4000;
    while (Date.now() < until) {
      const { rows } = await pool.query<{ fire_ms: number }>(
        `SELECT (extract(epoch from r.fire_time) * 1000)::bigint AS fire_ms FROM runs r JOIN workflows w ON w.id = r.workflow_id
          WHERE w.name LIKE 'vis-%'`,
      );
      const answeredAt = Date.now();
      seen = rows.length;
      // A row returned by a query that finished before the row's fire time was visible too early.
      for (const r of rows)
        if (r.fire_ms > answeredAt) violations.push(`fire ${r.fire_ms} seen by ${answeredAt}`);
      await sleep(10);
    }
    await f.stop();
    expect(seen).toBeGreaterThanOrEqual(100);
    expect(violations).toEqual([]);
  }, 20_000);

  it('a lease that is no longer valid at the fire time rolls the staged fire back', async () => {
    await applyScheduledWorkflows(pool, 'late-lease', 10, { cron: '* * * * * *' });
    // Valid in the second half of each second (when fires are staged), invalid in the first half
    // (when staged fires would commit). Fires that come due while invalid are fired late, once
    // valid again — those commit; no staged fire may (a staged fire records created_at = fire time).
    const f = new ScheduleFirer({
      pool,
      nodeKey: 'late-lease-m',
      liveMasters: () => ['late-lease-m'],
      leaseValid: () => Date.now() % 1000 >= 500,
      logger: quietLogger,
      options: { ...OPTIONS, prestageMs: 300 },
    });
    f.start();
    await sleep(3500);
    await f.stop();
    const runs = await runsOf(pool, 'late-lease');
    const committedAtFireTime = runs.filter((r) => r.created_at.getTime() === r.fire_ms);
    expect(committedAtFireTime).toEqual([]);
    expect(f.stats.errors).toBeGreaterThan(0); // staged fires were rolled back
  }, 20_000);
});
