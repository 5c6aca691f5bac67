import { applyDefinitions, compileDefinitions, setWorkflowPaused } from '@sched/store';
import type pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { applyScheduledWorkflows, migratedDatabase, runsOf, sleep, soleFirer } from './scheduler-fixtures.js';

// A schedule changed or paused while a master is firing it: the revision in the fire CAS makes
// the firer drop its stale copy, so the old cron never fires after the change is committed.

let pool: pg.Pool;
let drop: () => Promise<void>;
beforeAll(async () => {
  ({ pool, drop } = await migratedDatabase());
});
afterAll(async () => drop?.());

const firer = (nodeKey: string) => soleFirer(pool, nodeKey, { scanIntervalMs: 200, lookAheadMs: 3000 });

describe('schedule changes while firing', () => {
  it('a new cron takes over at once; the old one never fires after the change', async () => {
    await applyScheduledWorkflows(pool, 'chg', 1, { cron: '* * * * * *' });
    const f = firer('chg-m');
    f.start();
    await sleep(2500);
    const changedAt = Date.now();
    // Every 5 seconds, at :00, :05, …
    await applyDefinitions(
      pool,
      compileDefinitions([
        {
          value: {
            name: 'chg-0',
            schedule: { cron: '*/5 * * * * *', misfire: 'fire-all' },
            tasks: [{ name: 'only', type: 'noop' }],
          },
        },
      ]),
    );
    await sleep(6500);
    await f.stop();
    const runs = await runsOf(pool, 'chg');
    const before = runs.filter((r) => r.fire_ms < changedAt);
    const after = runs.filter((r) => r.fire_ms > changedAt + 1000); // a fire already in flight may commit just after
    expect(before.length).toBeGreaterThanOrEqual(2);
    expect(after.length).toBeGreaterThanOrEqual(1);
    expect(after.map((r) => (r.fire_ms / 1000) % 5)).toEqual(after.map(() => 0));
    const versions = await pool.query(
      `SELECT DISTINCT workflow_version FROM runs r JOIN workflows w ON w.id = r.workflow_id WHERE w.name = 'chg-0' AND r.fire_time > $1`,
      [new Date(changedAt + 1000)],
    );
    expect(versions.rows.map((r) => r.workflow_version)).toEqual([2]); // runs record the version they ran
  }, 20_000);

  it('pause stops firing; resume continues from now without catching up', async () => {
    await applyScheduledWorkflows(pool, 'pz', 1, { cron: '* * * * * *', misfire: 'fire-all' });
    const f = firer('pz-m');
    f.start();
    await sleep(2000);
    expect(await setWorkflowPaused(pool, 'pz-0', true)).toBe(true);
    const pausedAt = Date.now();
    await sleep(3000);
    const resumedAt = Date.now();
    expect(await setWorkflowPaused(pool, 'pz-0', false)).toBe(true);
    await sleep(2000);
    await f.stop();
    const runs = await runsOf(pool, 'pz');
    const during = runs.filter((r) => r.fire_ms > pausedAt + 1000 && r.fire_ms < resumedAt);
    expect(during).toEqual([]);
    expect(runs.filter((r) => r.fire_ms > resumedAt).length).toBeGreaterThanOrEqual(1);
    expect(runs.filter((r) => r.trigger === 'misfire')).toEqual([]);
    expect(await setWorkflowPaused(pool, 'no-such-workflow', true)).toBe(false);
  }, 20_000);
});
