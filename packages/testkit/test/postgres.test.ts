import pg from 'pg';
import { afterAll, describe, expect, it } from 'vitest';
import { createDatabase, type PgServer, processExists, startPostgres } from '../src/index.js';

async function query<T extends pg.QueryResultRow>(
  url: string,
  sql: string,
  params: unknown[] = [],
): Promise<T[]> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    return (await client.query<T>(sql, params)).rows;
  } finally {
    await client.end();
  }
}

describe('startPostgres (private cluster)', () => {
  let server: PgServer;
  afterAll(async () => {
    // stop() is idempotent; the harness would also stop it at the end of the file.
    await server?.stop();
  });

  it('starts a private cluster on a random loopback port', async () => {
    const started = performance.now();
    server = await startPostgres();
    console.log(`[measure] PostgreSQL start ${Math.round(performance.now() - started)} ms`);
    expect(server.port).not.toBe(5432);
    expect(processExists(server.pid)).toBe(true);
    const [row] = await query<{ dir: string; port: string }>(
      server.url(),
      "select current_setting('data_directory') as dir, current_setting('port') as port",
    );
    expect(row?.dir).toBe(server.dataDir);
    expect(Number(row?.port)).toBe(server.port);
  });

  it('creates isolated databases', async () => {
    const a = await createDatabase(server);
    const b = await createDatabase(server);
    expect(a.name).not.toBe(b.name);
    await query(a.url, 'create table only_in_a (x int)');
    await query(a.url, 'insert into only_in_a values (1)');
    expect(await query(a.url, 'select x from only_in_a')).toEqual([{ x: 1 }]);
    await expect(query(b.url, 'select x from only_in_a')).rejects.toThrow(/does not exist/);
    await b.drop();
    await expect(query(b.url, 'select 1')).rejects.toThrow(/does not exist/);
  });

  it('creates databases from a template', async () => {
    const template = await createDatabase(server, { prefix: 'template' });
    await query(template.url, 'create table migrated (id int primary key)');
    const copy = await createDatabase(server, { template: template.name });
    expect(await query(copy.url, 'select count(*)::int as n from migrated')).toEqual([{ n: 0 }]);
  });
});
