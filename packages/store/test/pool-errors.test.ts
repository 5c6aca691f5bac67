// Regression (found by the chaos suite): a master crashed with an unhandled 'error' event on its
// pg Pool when the server terminated the connection of an idle pooled client. createPool must
// survive that: the broken client is dropped and the next query gets a fresh connection.
import { createPool } from '@sched/store';
import { createDatabase } from '@sched/testkit';
import { expect, test } from 'vitest';

test('a pooled idle connection terminated by the server does not crash the process', async () => {
  const db = await createDatabase();
  const pool = createPool(db.url, { max: 2, applicationName: 'pool-error-test' });
  const admin = createPool(db.url, { max: 1, applicationName: 'pool-error-admin' });
  const uncaught: unknown[] = [];
  const onUncaught = (err: unknown) => uncaught.push(err);
  process.on('uncaughtException', onUncaught);
  try {
    const [{ pid }] = (await pool.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')).rows as [
      { pid: number },
    ];
    expect(pool.idleCount).toBe(1);
    await admin.query('SELECT pg_terminate_backend($1)', [pid]);
    // The idle client learns of the termination asynchronously; wait until the pool dropped it.
    for (let i = 0; i < 100 && pool.totalCount > 0; i++) await new Promise((r) => setTimeout(r, 20));
    expect(pool.totalCount).toBe(0);
    expect(uncaught).toEqual([]);
    const { rows } = await pool.query<{ ok: number }>('SELECT 1 AS ok');
    expect(rows).toEqual([{ ok: 1 }]);
  } finally {
    process.off('uncaughtException', onUncaught);
    await pool.end();
    await admin.end();
    await db.drop();
  }
});
