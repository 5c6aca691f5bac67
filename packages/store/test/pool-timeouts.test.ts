// sched's pool bounds every wait on PostgreSQL (docs/design.md#fencing, docs/operations.md; issue
// 13 points 5 and 9), against a real server:
// - a process frozen inside a transaction (a leader holding FOR SHARE on the epoch row) is ended
//   by the server after idle_in_transaction_session_timeout, and the session waiting for its lock
//   (the next leader's UPDATE) goes on;
// - a server that stops answering (a black hole in between) fails a query within the client-side
//   query timeout with a clear error instead of hanging, and a new connection within the connect
//   timeout; the broken connection is not handed out again.
import { createPool, DB_CONNECT_TIMEOUT, DB_QUERY_TIMEOUT, withTransaction } from '@sched/store';
import { createDatabase, FaultProxy, sharedPostgres } from '@sched/testkit';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';

let db: Awaited<ReturnType<typeof createDatabase>>;

beforeAll(async () => {
  db = await createDatabase();
  const setup = createPool(db.url, { max: 1 });
  await setup.query('CREATE TABLE epoch (id int PRIMARY KEY, leader_epoch bigint NOT NULL)');
  await setup.query('INSERT INTO epoch VALUES (1, 1)');
  await setup.end();
});
afterAll(async () => {
  await db.drop();
});

/** Rejects with a message saying what was still pending when `ms` ran out (the old, hanging behaviour). */
function within<T>(ms: number, what: string, p: Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([
    p,
    new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`${what}: still waiting after ${ms} ms`)), ms);
    }),
  ]).finally(() => clearTimeout(timer));
}

describe('createPool timeouts', () => {
  test('every connection carries the server-side timeouts; the defaults are bounded', async () => {
    const pool = createPool(db.url, { max: 1 });
    try {
      const { rows } = await pool.query<Record<string, string>>(
        `SELECT current_setting('statement_timeout') AS statement,
                current_setting('lock_timeout') AS lock,
                current_setting('idle_in_transaction_session_timeout') AS idle`,
      );
      expect(rows[0]).toEqual({ statement: '1min', lock: '30s', idle: '15s' });
    } finally {
      await pool.end();
    }
  });

  test('a transaction left idle holding a row lock is ended by the server after idleInTransactionTimeout, and the session waiting for the lock then gets it', async () => {
    const frozen = createPool(db.url, { max: 1, timeouts: { idleInTransactionTimeoutMs: 1_000 } });
    const next = createPool(db.url, { max: 1 });
    // The old leader: share-locks the epoch row (lockLeaderEpoch), then is frozen mid-transaction.
    const holder = await frozen.connect();
    const holderError = new Promise<Error>((resolve) => holder.once('error', resolve));
    try {
      await holder.query('BEGIN');
      await holder.query('SELECT leader_epoch FROM epoch WHERE id = 1 FOR SHARE');
      const started = performance.now();
      // The next leader records its epoch: blocked until the old transaction ends.
      const advanced = await within(
        10_000,
        'the UPDATE waiting for the frozen transaction',
        next.query('UPDATE epoch SET leader_epoch = leader_epoch + 1 WHERE id = 1'),
      );
      const waited = performance.now() - started;
      expect(advanced.rowCount).toBe(1);
      expect(waited).toBeGreaterThan(800);
      expect(waited).toBeLessThan(5_000);
      // The frozen one's session was ended by the server, which says why.
      expect((await within(5_000, 'the error on the frozen session', holderError)).message).toMatch(
        /idle-in-transaction timeout/,
      );
    } finally {
      holder.release(true); // destroyed: ends the transaction if the server did not
      await frozen.end();
      await next.end();
    }
  });

  test('a query to a black-holed PostgreSQL fails within queryTimeout with a clear error, a new connection within connectTimeout, and the broken connection is dropped', async () => {
    const pg = await sharedPostgres();
    const proxy = await FaultProxy.start({ host: pg.host, port: pg.port });
    const url = `postgres://${pg.user}@${proxy.address}/${db.name}`;
    const pool = createPool(url, { max: 2, timeouts: { queryTimeoutMs: 1_000, connectTimeoutMs: 1_000 } });
    try {
      expect((await pool.query('SELECT 1 AS ok')).rows).toEqual([{ ok: 1 }]);
      proxy.setMode('blackhole');

      let started = performance.now();
      const err = await within(10_000, 'a query to the black-holed server', pool.query('SELECT 2')).then(
        () => undefined,
        (e: unknown) => e as Error & { code?: string },
      );
      let took = performance.now() - started;
      expect(err?.code).toBe(DB_QUERY_TIMEOUT);
      expect(err?.message).toBe(
        'PostgreSQL did not answer a query within 1000 ms (db.queryTimeout); the connection is dropped',
      );
      expect(took).toBeGreaterThan(900);
      expect(took).toBeLessThan(3_000);
      await new Promise((r) => setTimeout(r, 50));
      expect(pool.totalCount).toBe(0); // the unanswered connection is not pooled again

      // Inside a transaction (the connection answered BEGIN, then went silent): withTransaction
      // gives up within the timeout too (no ROLLBACK queued behind the lost answer) and drops it.
      proxy.setMode('pass');
      started = performance.now();
      const txErr = await within(
        10_000,
        'a transaction on the black-holed server',
        withTransaction(pool, async (tx) => {
          await tx.query('SELECT 3');
          proxy.setMode('blackhole');
          started = performance.now();
          await tx.query('SELECT 4');
        }),
      ).then(
        () => undefined,
        (e: unknown) => e as Error & { code?: string },
      );
      took = performance.now() - started;
      expect(txErr?.code).toBe(DB_QUERY_TIMEOUT);
      expect(took).toBeLessThan(3_000);
      await new Promise((r) => setTimeout(r, 50));
      expect(pool.totalCount).toBe(0);

      // A new connection: TCP reaches the proxy, the login is never answered.
      started = performance.now();
      const connectErr = await within(
        10_000,
        'a new connection to the black-holed server',
        pool.query('SELECT 5'),
      ).then(
        () => undefined,
        (e: unknown) => e as Error & { code?: string },
      );
      took = performance.now() - started;
      expect(connectErr?.code).toBe(DB_CONNECT_TIMEOUT);
      expect(connectErr?.message).toMatch(
        /^could not open a PostgreSQL connection within 1000 ms \(db\.connectTimeout\)/,
      );
      expect(took).toBeGreaterThan(900);
      expect(took).toBeLessThan(3_000);

      proxy.setMode('pass');
      expect((await within(10_000, 'a query after the heal', pool.query('SELECT 4 AS ok'))).rows).toEqual([
        { ok: 4 },
      ]);
      const inTx = await within(
        10_000,
        'a transaction after the heal',
        withTransaction(pool, async (tx) => (await tx.query('SELECT 5 AS ok')).rows),
      );
      expect(inTx).toEqual([{ ok: 5 }]);
    } finally {
      proxy.setMode('pass');
      await pool.end();
    }
  });
});
