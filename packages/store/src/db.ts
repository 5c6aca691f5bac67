import { SchedError } from '@sched/core';
import pg from 'pg';

/** Anything that runs a query: a pool, or a client inside a transaction. */
export type Db = Pick<pg.ClientBase, 'query'>;

// bigint (int8) columns as JS numbers: every id and epoch-ms value sched stores fits in 2^53.
pg.types.setTypeParser(20, (v) => Number(v));

/**
 * How long sched waits on PostgreSQL, and how long PostgreSQL lets a sched session hold on
 * (docs/configuration.md `db.*`; 0 = no limit). Without them a process frozen inside a
 * transaction holds its locks forever (the next leader waits forever: docs/design.md#fencing),
 * and a master cut off from the database hangs on its queries.
 */
export interface DbTimeouts {
  /** Opening a connection: TCP connect and login. */
  connectTimeoutMs: number;
  /** Client side: the answer to one query; on expiry the query fails and the connection is dropped. */
  queryTimeoutMs: number;
  /** Server side `statement_timeout`. */
  statementTimeoutMs: number;
  /** Server side `lock_timeout`. */
  lockTimeoutMs: number;
  /** Server side `idle_in_transaction_session_timeout`: a session idle inside a transaction is ended, its locks released. */
  idleInTransactionTimeoutMs: number;
  /** TCP keepalive: idle time before the first probe. */
  keepAliveMs: number;
}

/** The defaults of the `db.*` timeout settings (packages/core/src/config-schema.ts). */
export const DEFAULT_DB_TIMEOUTS: Readonly<DbTimeouts> = {
  connectTimeoutMs: 10_000,
  queryTimeoutMs: 75_000,
  statementTimeoutMs: 60_000,
  lockTimeoutMs: 30_000,
  idleInTransactionTimeoutMs: 15_000,
  keepAliveMs: 10_000,
};

/** `code` of the error a query fails with when PostgreSQL did not answer within `queryTimeoutMs`. */
export const DB_QUERY_TIMEOUT = 'DB_QUERY_TIMEOUT';
/** `code` of the error a connection fails with when it could not be opened within `connectTimeoutMs`. */
export const DB_CONNECT_TIMEOUT = 'DB_CONNECT_TIMEOUT';

/** Whether `err` says the connection it came from is unusable (no answer, or never opened). */
export function isDbTimeout(err: unknown): boolean {
  return err instanceof SchedError && (err.code === DB_QUERY_TIMEOUT || err.code === DB_CONNECT_TIMEOUT);
}

/** pg's bare timeout errors, restated: what timed out, after how long, and which setting decides it. */
function clarify(err: unknown, t: DbTimeouts): unknown {
  if (!(err instanceof Error) || err instanceof SchedError) return err;
  if (err.message === 'Query read timeout') {
    return new SchedError(
      DB_QUERY_TIMEOUT,
      `PostgreSQL did not answer a query within ${t.queryTimeoutMs} ms (db.queryTimeout); the connection is dropped`,
      { retriable: true, cause: err },
    );
  }
  if (/timeout expired|connection timeout/.test(err.message)) {
    return new SchedError(
      DB_CONNECT_TIMEOUT,
      `could not open a PostgreSQL connection within ${t.connectTimeoutMs} ms (db.connectTimeout): ${err.message}`,
      { retriable: true, cause: err },
    );
  }
  return err;
}

/**
 * The connection class of sched's pools: every connection gets the timeouts (the server-side
 * ones as startup parameters, so they hold for every statement on it), and pg's timeout errors
 * become `DB_QUERY_TIMEOUT` / `DB_CONNECT_TIMEOUT`. The connect timeout is the connection's own,
 * not the pool's, so waiting for a free pooled connection under load is not cut short.
 */
function clientClass(t: DbTimeouts): typeof pg.Client {
  return class SchedPgClient extends pg.Client {
    constructor(config?: string | pg.ClientConfig) {
      super({
        ...(typeof config === 'string' ? { connectionString: config } : config),
        ...(t.connectTimeoutMs > 0 ? { connectionTimeoutMillis: t.connectTimeoutMs } : {}),
        ...(t.queryTimeoutMs > 0 ? { query_timeout: t.queryTimeoutMs } : {}),
        ...(t.statementTimeoutMs > 0 ? { statement_timeout: t.statementTimeoutMs } : {}),
        ...(t.lockTimeoutMs > 0 ? { lock_timeout: t.lockTimeoutMs } : {}),
        ...(t.idleInTransactionTimeoutMs > 0
          ? { idle_in_transaction_session_timeout: t.idleInTransactionTimeoutMs }
          : {}),
        ...(t.keepAliveMs > 0 ? { keepAlive: true, keepAliveInitialDelayMillis: t.keepAliveMs } : {}),
      });
      // A connection that breaks while checked out but between statements (a pre-staged fire
      // waiting for its instant, a transaction between queries; PostgreSQL restarted or the
      // link cut) emits 'error' with no query to fail; unheard, Node would turn it into an
      // uncaught exception that kills the daemon. The next query on it fails instead (the
      // caller's error path), and the pool discards a connection that is no longer queryable.
      this.on('error', () => {});
    }

    // pg's connect() and query() have several overloads (promise, callback, submittable); one
    // wrapper each forwards them all and only restates the errors.
    // biome-ignore lint/suspicious/noExplicitAny: forwards every overload unchanged
    override connect(...args: any[]): any {
      return clarified(args, t, (a) => (super.connect as (...x: unknown[]) => unknown).apply(this, a));
    }

    // biome-ignore lint/suspicious/noExplicitAny: forwards every overload unchanged
    override query(...args: any[]): any {
      return clarified(args, t, (a) => (super.query as (...x: unknown[]) => unknown).apply(this, a));
    }
  };
}

/** Calls `call(args)` with a trailing callback's or the returned promise's error clarified. */
function clarified(args: unknown[], t: DbTimeouts, call: (args: unknown[]) => unknown): unknown {
  const last = args.length - 1;
  if (typeof args[last] === 'function') {
    const callback = args[last] as (err: unknown, ...rest: unknown[]) => void;
    const wrapped = [...args];
    wrapped[last] = (err: unknown, ...rest: unknown[]) => callback(err ? clarify(err, t) : err, ...rest);
    return call(wrapped);
  }
  const result = call(args);
  if (result instanceof Promise) {
    return result.catch((err: unknown) => {
      throw clarify(err, t);
    });
  }
  return result;
}

export interface CreatePoolOptions {
  max?: number;
  applicationName?: string;
  /** @defaultValue DEFAULT_DB_TIMEOUTS, field by field */
  timeouts?: Partial<DbTimeouts>;
}

/** The timeouts of sched's configuration (`config.db`), for `createPool`. */
export function dbTimeoutsOf(db: DbTimeouts): DbTimeouts {
  return {
    connectTimeoutMs: db.connectTimeoutMs,
    queryTimeoutMs: db.queryTimeoutMs,
    statementTimeoutMs: db.statementTimeoutMs,
    lockTimeoutMs: db.lockTimeoutMs,
    idleInTransactionTimeoutMs: db.idleInTransactionTimeoutMs,
    keepAliveMs: db.keepAliveMs,
  };
}

export function createPool(url: string, opts: CreatePoolOptions = {}): pg.Pool {
  const timeouts: DbTimeouts = { ...DEFAULT_DB_TIMEOUTS, ...opts.timeouts };
  const pool = new pg.Pool({
    connectionString: url,
    max: opts.max ?? 10,
    application_name: opts.applicationName ?? 'sched',
    Client: clientClass(timeouts),
  });
  // When the connection of an idle client ends (the server terminated it — e.g. the firer's
  // idle_in_transaction_session_timeout —, restarted, or the network dropped it), the pool has
  // already discarded that client when it emits 'error'; without a listener Node turns the event
  // into an uncaught exception that kills the daemon. The next query opens a fresh connection.
  pool.on('error', () => {});
  return pool;
}

/**
 * Runs `fn` in one transaction on one pooled client; rolls back on any error. A connection that
 * failed (no answer within `db.queryTimeout`, or a ROLLBACK that failed) is dropped, never
 * returned to the pool: a query behind an unanswered one would only wait for the same answer.
 */
export async function withTransaction<T>(
  pool: pg.Pool,
  fn: (client: pg.PoolClient) => Promise<T>,
): Promise<T> {
  const client = await pool.connect();
  let broken: Error | undefined;
  try {
    await client.query('BEGIN');
    const result = await fn(client);
    await client.query('COMMIT');
    return result;
  } catch (err) {
    if (isDbTimeout(err)) broken = err as Error;
    else
      await client.query('ROLLBACK').catch((rollbackErr: Error) => {
        broken = rollbackErr;
      });
    throw err;
  } finally {
    client.release(broken);
  }
}
