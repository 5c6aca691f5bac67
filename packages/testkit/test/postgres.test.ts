import pg from 'pg';
import { afterAll, describe, expect, it } from 'vitest';
import {
  createDatabase,
  createTemplateDatabase,
  type PgServer,
  processExists,
  startPostgres,
} from '../src/index.js';

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

  it('builds a template database once, even for concurrent callers, and seals it', async () => {
    let builds = 0;
    const build = async (url: string): Promise<void> => {
      builds += 1;
      await query(url, 'create table migrated_once (id int primary key)');
      await query(url, 'insert into migrated_once values (42)');
    };
    const names = await Promise.all([
      createTemplateDatabase('tpl_v1', build, server),
      createTemplateDatabase('tpl_v1', build, server),
      createTemplateDatabase('tpl_v1', build, server),
    ]);
    expect(names).toEqual(['tpl_v1', 'tpl_v1', 'tpl_v1']);
    expect(builds).toBe(1);
    await expect(query(server.url('tpl_v1'), 'select 1')).rejects.toThrow(
      /not currently accepting connections/,
    );
    const [first, second] = await Promise.all([
      createDatabase(server, { template: 'tpl_v1' }),
      createDatabase(server, { template: 'tpl_v1' }),
    ]);
    expect(await query(first!.url, 'select id from migrated_once')).toEqual([{ id: 42 }]);
    await query(first!.url, 'insert into migrated_once values (1)');
    expect(await query(second!.url, 'select count(*)::int as n from migrated_once')).toEqual([{ n: 1 }]);
  });

  it('drops a half-built template when the build fails, so the next call rebuilds it', async () => {
    await expect(
      createTemplateDatabase(
        'tpl_broken',
        async () => {
          throw new Error('migration failed');
        },
        server,
      ),
    ).rejects.toThrow(/migration failed/);
    const name = await createTemplateDatabase(
      'tpl_broken',
      async (url) => query(url, 'create table ok (x int)').then(() => undefined),
      server,
    );
    const db = await createDatabase(server, { template: name });
    expect(await query(db.url, 'select count(*)::int as n from ok')).toEqual([{ n: 0 }]);
  });
});
