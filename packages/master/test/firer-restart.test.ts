// A master that fences itself stops its firer without waiting for the stop, and starts it again
// when it registers in a new session. A start() that comes while the stop is still under way must
// not be lost: the firer runs again once stopped (a lost start left a master that never fired
// again after a ZooKeeper outage). Against a real PostgreSQL.
import type pg from 'pg';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { applyScheduledWorkflows, migratedDatabase, runsOf, sleep, soleFirer } from './scheduler-fixtures.js';

let pool: pg.Pool;
let drop: () => Promise<void>;
beforeAll(async () => {
  ({ pool, drop } = await migratedDatabase());
});
afterAll(async () => drop?.());

test('a start() asked while the firer is stopping is carried out once it has stopped; a stop() meanwhile cancels it', async () => {
  await applyScheduledWorkflows(pool, 'restart', 1, { cron: '* * * * * *' });
  const firer = soleFirer(pool, '127.0.0.1:1_1', { scanIntervalMs: 250, lookAheadMs: 2000 });
  firer.start();
  await sleep(1500);

  const stopping = firer.stop(); // not awaited, as when fencing
  expect(firer.currentState).toBe('stopping');
  firer.start(); // registered again meanwhile
  await stopping;
  expect(firer.currentState).toBe('running');
  const resumedAt = Date.now();
  await sleep(2500);
  const fired = (await runsOf(pool, 'restart')).filter((r) => Number(r.fire_ms) > resumedAt);
  expect(fired.length).toBeGreaterThanOrEqual(1);

  // A stop() while stopping cancels the start asked meanwhile: a shutdown wins.
  const again = firer.stop();
  firer.start();
  await firer.stop();
  await again;
  expect(firer.currentState).toBe('stopped');
});
