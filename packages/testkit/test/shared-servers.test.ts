import pg from 'pg';
import { describe, expect, it } from 'vitest';
import {
  createDatabase,
  processExists,
  sharedPgEnv,
  sharedPostgres,
  sharedZkEnv,
  sharedZooKeeper,
  zkChroot,
} from '../src/index.js';
import { connectZk, create, getChildren } from './zk-helpers.js';

describe('shared servers', () => {
  it('are the ones the global setup started (same server on every call)', async () => {
    // Under `vitest run` with the repository config, the global setup published both.
    expect(process.env[sharedZkEnv]).toBeDefined();
    expect(process.env[sharedPgEnv]).toBeDefined();
    const zk = await sharedZooKeeper();
    expect(await sharedZooKeeper()).toBe(zk);
    expect(zk.port).toBe(JSON.parse(process.env[sharedZkEnv]!).port);
    expect(processExists(zk.pid)).toBe(true);
    const pgServer = await sharedPostgres();
    expect(pgServer.port).toBe(JSON.parse(process.env[sharedPgEnv]!).port);
    expect(processExists(pgServer.pid)).toBe(true);
  });

  it('refuse to be stopped or killed by a test', async () => {
    const zk = await sharedZooKeeper();
    await expect(zk.kill()).rejects.toThrow(/shared ZooKeeper must not be stopped/);
    const pgServer = await sharedPostgres();
    await expect(pgServer.stop()).rejects.toThrow(/shared PostgreSQL must not be stopped/);
  });

  it('isolate files by chroot and by database', async () => {
    const zk = await sharedZooKeeper();
    const chroot = await zkChroot(zk, 'shared');
    const client = await connectZk(chroot);
    try {
      await create(client, '/mine', '');
      expect(await getChildren(client, '/')).toEqual(['mine']);
    } finally {
      client.close();
    }
    const db = await createDatabase();
    expect(db.name).toMatch(/^t_shared_servers_/);
    const pgClient = new pg.Client({ connectionString: db.url });
    await pgClient.connect();
    try {
      const { rows } = await pgClient.query<{ db: string }>('select current_database() as db');
      expect(rows[0]?.db).toBe(db.name);
    } finally {
      await pgClient.end();
    }
  });
});
