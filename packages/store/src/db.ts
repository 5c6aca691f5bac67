import pg from 'pg';

/** Anything that runs a query: a pool, or a client inside a transaction. */
export type Db = Pick<pg.ClientBase, 'query'>;

// bigint (int8) columns as JS numbers: every id and epoch-ms value sched stores fits in 2^53.
pg.types.setTypeParser(20, (v) => Number(v));

export function createPool(url: string, opts: { max?: number; applicationName?: string } = {}): pg.Pool {
  const pool = new pg.Pool({
    connectionString: url,
    max: opts.max ?? 10,
    application_name: opts.applicationName ?? 'sched',
  });
  // When the connection of an idle client ends (the server terminated it — e.g. the firer's
  // idle_in_transaction_session_timeout —, restarted, or the network dropped it), the pool has
  // already discarded that client when it emits 'error'; without a listener Node turns the event
  // into an uncaught exception that kills the daemon. The next query opens a fresh connection.
  pool.on('error', () => {});
  return pool;
}

/** Runs `fn` in one transaction on one pooled client; rolls back on any error. */
export async function withTransaction<T>(
  pool: pg.Pool,
  fn: (client: pg.PoolClient) => Promise<T>,
): Promise<T> {
  const client = await pool.connect();
  try {
    await client.query('BEGIN');
    const result = await fn(client);
    await client.query('COMMIT');
    return result;
  } catch (err) {
    await client.query('ROLLBACK').catch(() => {});
    throw err;
  } finally {
    client.release();
  }
}
