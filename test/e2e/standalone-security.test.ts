// Standalone is safe on a shared host (issue 14, item 6 and acceptance 6; docs/security.md#standalone):
// a second local user cannot connect to the standalone PostgreSQL or ZooKeeper without the
// credentials sched-standalone generated and keeps in .sched-data/standalone.json (mode 0600).
//
// "A second local user" is whoever reaches the servers' ports on 127.0.0.1 without that file: a
// process of this test that does not use the generated credentials (another PostgreSQL role, no
// password, a wrong one; a ZooKeeper client without or with other digest credentials) — which is
// all another local user can do over TCP. The PostgreSQL socket is in a private folder (0700); when
// the test runs as root, it also tries that socket as the `nobody` user, which must be refused.
//
// Then an earlier version's data folder (trust authentication, no password, an open socket folder)
// is migrated by the next start: password set, pg_hba.conf rewritten, sched-ctl still works.
import { execFile, spawnSync } from 'node:child_process';
import {
  chmodSync,
  existsSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  realpathSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { registerCleanup, spawnProcess } from '@sched/testkit';
import zookeeper from 'node-zookeeper-client';
import pg from 'pg';
import { expect, test } from 'vitest';

const root = fileURLToPath(new URL('../..', import.meta.url));
const bin = (name: string) => join(root, 'packages/cli/dist/bin', `${name}.js`);
const run = promisify(execFile);
const NO_AUTH = zookeeper.Exception.NO_AUTH;

interface StandaloneJson {
  zk: string;
  zkAuth: string;
  dbUrl: string;
  pgPassword: string;
  pgPort: number;
  secret: string;
  root: string;
}

/** A clean environment: no SCHED_* variable, so sched-ctl must find the cluster by itself. */
function cleanEnv(): Record<string, string> {
  return Object.fromEntries(
    Object.entries(process.env).filter(([k, v]) => !k.startsWith('SCHED_') && v !== undefined),
  ) as Record<string, string>;
}

async function startStandalone(cwd: string) {
  const log = join(cwd, 'standalone-output.log');
  const child = spawnProcess(process.execPath, [bin('sched-standalone'), '--no-examples'], {
    cwd,
    replaceEnv: true,
    env: { ...cleanEnv(), SCHED_LOG_LEVEL: 'info' },
    logFile: log,
  });
  registerCleanup('sched-standalone', async () => {
    if (child.running) child.signal('SIGINT');
    await child.exited;
  });
  await child.waitForOutput(/ready in [\d.]+ s/, 180_000).catch((err) => {
    throw new Error(`${(err as Error).message}\n(full output: ${log})`);
  });
  return child;
}

function readState(cwd: string): StandaloneJson {
  return JSON.parse(readFileSync(join(cwd, '.sched-data/standalone.json'), 'utf8')) as StandaloneJson;
}

/**
 * What PostgreSQL answers a bare startup message (protocol 3.0) on its TCP port: the
 * authentication it asks for (`R` with code 0 = in without a password (trust), 10 = SASL, i.e.
 * SCRAM) or an error. No client library in between that could refuse on its own.
 */
function pgStartupAnswer(port: number, user: string, database: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const params = Buffer.from(`user\0${user}\0database\0${database}\0\0`);
    const message = Buffer.alloc(8 + params.length);
    message.writeInt32BE(message.length, 0);
    message.writeInt32BE(196_608, 4); // protocol 3.0
    params.copy(message, 8);
    const socket = connect(port, '127.0.0.1', () => socket.write(message));
    socket.setTimeout(5_000, () => socket.destroy(new Error('no answer from PostgreSQL')));
    let data = Buffer.alloc(0);
    socket.on('data', (chunk) => {
      data = Buffer.concat([data, chunk]);
      if (data.length < 9) return;
      socket.destroy();
      const type = String.fromCharCode(data[0] as number);
      if (type === 'R') resolve(`R${data.readInt32BE(5)}`);
      else resolve(`${type}:${data.subarray(5).toString('utf8').replace(/\0/g, ' ')}`);
    });
    socket.on('error', reject);
  });
}

/** The SQLSTATE a login ends with ('' when it succeeded). */
async function loginError(config: pg.ClientConfig): Promise<string> {
  const client = new pg.Client({ ...config, connectionTimeoutMillis: 5_000 });
  try {
    await client.connect();
    await client.query('SELECT 1');
    return '';
  } catch (err) {
    return (err as { code?: string }).code ?? (err as Error).message;
  } finally {
    await client.end().catch(() => {});
  }
}

/** Asserts what another local user gets from the standalone PostgreSQL, and what the owner gets. */
async function checkPostgres(cwd: string, state: StandaloneJson): Promise<void> {
  const port = state.pgPort;
  // Without a password: the server demands SCRAM (SASL) for every role and database — nothing is
  // trusted — and a login without the password does not get in.
  for (const [user, database] of [
    ['postgres', 'sched'],
    ['postgres', 'postgres'],
    ['nobody', 'sched'],
    ['alice', 'postgres'],
  ] as const) {
    expect(await pgStartupAnswer(port, user, database), `${user}@${database}`).toBe('R10');
  }
  const psql = readdirSync('/usr/lib/postgresql')
    .map((v) => join('/usr/lib/postgresql', v, 'bin/psql'))
    .find((p) => existsSync(p));
  if (psql) {
    const env = { ...cleanEnv() };
    delete env.PGPASSWORD;
    const r = spawnSync(
      psql,
      ['-w', '-h', '127.0.0.1', '-p', String(port), '-U', 'postgres', '-c', 'SELECT 1', 'sched'],
      {
        env,
        encoding: 'utf8',
      },
    );
    expect(r.status, r.stdout).not.toBe(0);
    expect(r.stderr).toMatch(/no password supplied|password authentication failed/);
  }
  // A wrong password, or another role: refused by the server (28P01 invalid_password).
  const base = { host: '127.0.0.1', port, database: 'sched' };
  expect(await loginError({ ...base, user: 'postgres', password: 'not-the-password' })).toBe('28P01');
  expect(await loginError({ ...base, user: 'postgres', password: '' })).not.toBe('');
  expect(await loginError({ ...base, user: 'nobody', password: state.pgPassword })).toBe('28P01');
  // The generated password (in standalone.json, and in its dbUrl) gets in; it is stored as SCRAM;
  // every pg_hba.conf rule PostgreSQL loaded asks for SCRAM.
  expect(state.dbUrl).toBe(`postgres://postgres:${state.pgPassword}@127.0.0.1:${port}/sched`);
  expect(state.pgPassword.length).toBeGreaterThanOrEqual(32);
  const client = new pg.Client({ connectionString: state.dbUrl });
  await client.connect();
  try {
    const stored = await client.query<{ scram: boolean }>(
      `SELECT rolpassword LIKE 'SCRAM-SHA-256$%' AS scram FROM pg_authid WHERE rolname = 'postgres'`,
    );
    expect(stored.rows[0]?.scram).toBe(true);
    const rules = await client.query<{ type: string; auth_method: string; error: string | null }>(
      'SELECT type, auth_method, error FROM pg_hba_file_rules',
    );
    expect(rules.rows.length).toBeGreaterThan(0);
    for (const rule of rules.rows) expect(rule).toMatchObject({ auth_method: 'scram-sha-256', error: null });
    expect(rules.rows.map((r) => r.type)).toContain('local');
  } finally {
    await client.end();
  }

  // The socket folder is private to the server's user; as root, `nobody` tries the socket itself.
  const sockets = join(cwd, '.sched-data/postgres/sockets');
  expect(statSync(sockets).mode & 0o777).toBe(0o700);
  if (process.getuid?.() === 0) {
    const socket = join(sockets, `.s.PGSQL.${port}`);
    expect(existsSync(socket)).toBe(true);
    const script =
      "const s = require('node:net').connect(process.argv[1]);" +
      "s.on('connect', () => { console.log('CONNECTED'); s.destroy(); });" +
      "s.on('error', (e) => console.log(e.code));";
    const r = spawnSync(process.execPath, ['-e', script, socket], {
      uid: 65534,
      gid: 65534,
      encoding: 'utf8',
    });
    expect(r.stdout.trim(), r.stderr).toBe('EACCES');
  }
}

/** A raw node-zookeeper-client (no sched code in between), optionally with digest credentials. */
async function rawZk(connectString: string, auth?: string): Promise<zookeeper.Client> {
  const client = zookeeper.createClient(connectString, { sessionTimeout: 10_000, retries: 0 });
  if (auth) client.addAuthInfo('digest', Buffer.from(auth));
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`cannot connect to ${connectString}`)), 10_000);
    client.once('connected', () => {
      clearTimeout(timer);
      resolve();
    });
    client.connect();
  });
  registerCleanup('raw ZooKeeper client', () => client.close());
  return client;
}

function codeOf(run: (cb: (err: Error | zookeeper.Exception | null) => void) => void): Promise<number> {
  return new Promise((resolve) =>
    run((err) => resolve(err ? ((err as unknown as { code?: number }).code ?? -1) : 0)),
  );
}

/** Without the generated credentials, or with others, ZooKeeper answers NO_AUTH under the root. */
async function checkZooKeeper(state: StandaloneJson): Promise<void> {
  const rootPath = state.root;
  const fake = JSON.stringify({ address: '127.0.0.1:1', startTime: 1, pid: 1 });
  for (const auth of [undefined, 'sched:not-the-password', 'mallory:whatever']) {
    const client = await rawZk(state.zk, auth);
    const label = auth ?? 'no credentials';
    expect(await codeOf((cb) => client.getChildren(rootPath, cb)), label).toBe(NO_AUTH);
    expect(await codeOf((cb) => client.getData(rootPath, cb)), label).toBe(NO_AUTH);
    expect(await codeOf((cb) => client.getChildren(`${rootPath}/workers`, cb)), label).toBe(NO_AUTH);
    expect(
      await codeOf((cb) =>
        client.create(
          `${rootPath}/workers/127.0.0.1:1_1`,
          Buffer.from(fake),
          zookeeper.CreateMode.EPHEMERAL,
          cb,
        ),
      ),
      label,
    ).toBe(NO_AUTH);
    expect(
      await codeOf((cb) =>
        client.create(`${rootPath}/failover-finish-nodes/worker/x`, Buffer.from(fake), cb),
      ),
      label,
    ).toBe(NO_AUTH);
    expect(await codeOf((cb) => client.setData(rootPath, Buffer.from('x'), -1, cb)), label).toBe(NO_AUTH);
    expect(await codeOf((cb) => client.remove(`${rootPath}/cluster-id`, -1, cb)), label).toBe(NO_AUTH);
  }
  // With the generated credentials: read access (the master and the worker are registered).
  const owner = await rawZk(state.zk, state.zkAuth);
  const workers = await new Promise<string[]>((resolve, reject) =>
    owner.getChildren(`${rootPath}/workers`, (err, children) => (err ? reject(err) : resolve(children))),
  );
  expect(workers).toHaveLength(1);
}

async function clusterStatus(cwd: string): Promise<{ masters: { leader: boolean }[]; workers: unknown[] }> {
  const { stdout } = await run(process.execPath, [bin('sched-ctl'), 'cluster', 'status', '--json'], {
    cwd,
    env: cleanEnv(),
  });
  return JSON.parse(stdout) as { masters: { leader: boolean }[]; workers: unknown[] };
}

function postgresBin(): string {
  const version = readdirSync('/usr/lib/postgresql')
    .filter((v) => existsSync(join('/usr/lib/postgresql', v, 'bin/postgres')))
    .sort((a, b) => Number(b) - Number(a))[0];
  return join('/usr/lib/postgresql', version as string, 'bin/postgres');
}

/** Makes the folder look like one an earlier version left: trust, no password, an open socket folder. */
function makeEarlierVersionFolder(cwd: string, state: StandaloneJson): void {
  const pgDir = realpathSync(join(cwd, '.sched-data/postgres'));
  const data = join(pgDir, 'data');
  const asPostgres = process.getuid?.() === 0 ? { uid: statSync(data).uid, gid: statSync(data).gid } : {};
  const cleared = spawnSync(postgresBin(), ['--single', '-D', data, 'postgres'], {
    ...asPostgres,
    input: 'ALTER ROLE postgres WITH PASSWORD NULL;\n',
    encoding: 'utf8',
  });
  expect(cleared.status, cleared.stderr).toBe(0);
  // initdb --auth=trust's rules, as earlier versions had them.
  writeFileSync(
    join(data, 'pg_hba.conf'),
    [
      'local   all             all                                     trust',
      'host    all             all             127.0.0.1/32            trust',
      'host    all             all             ::1/128                 trust',
      '',
    ].join('\n'),
  );
  chmodSync(join(pgDir, 'sockets'), 0o755);
  const { pgPassword: _, ...earlier } = state;
  writeFileSync(
    join(cwd, '.sched-data/standalone.json'),
    JSON.stringify({ ...earlier, dbUrl: `postgres://postgres@127.0.0.1:${state.pgPort}/sched` }),
  );
}

test('acceptance 6: a second local user cannot connect to the standalone PostgreSQL or ZooKeeper without the generated credentials; an earlier trust-auth folder is migrated', {
  timeout: 300_000,
}, async () => {
  const cwd = mkdtempSync(join(tmpdir(), 'sched-standalone-sec-'));
  registerCleanup('standalone data outside the folder', () => {
    // Running as root, PostgreSQL's data may live under /var/lib/sched-standalone (a symlink here).
    try {
      const real = realpathSync(join(cwd, '.sched-data/postgres'));
      if (real.startsWith('/var/lib/sched-standalone/')) rmSync(real, { recursive: true, force: true });
    } catch {
      // nothing there
    }
  });

  const child = await startStandalone(cwd);
  const file = join(cwd, '.sched-data/standalone.json');
  expect(statSync(file).mode & 0o777).toBe(0o600);
  const state = readState(cwd);
  await checkPostgres(cwd, state);
  await checkZooKeeper(state);
  const status = await clusterStatus(cwd);
  expect(status.masters).toHaveLength(1);
  expect(status.workers).toHaveLength(1);
  child.signal('SIGINT');
  expect((await child.exited).code).toBe(0);

  // An earlier version's folder: migrated at the next start, never listening with trust.
  makeEarlierVersionFolder(cwd, state);
  const again = await startStandalone(cwd);
  expect(again.output()).toMatch(/PostgreSQL used trust authentication .* it now has a generated password/);
  const migrated = readState(cwd);
  expect(migrated.pgPassword).toBeDefined();
  expect(migrated.pgPassword).not.toBe(state.pgPassword);
  expect(statSync(file).mode & 0o777).toBe(0o600);
  await checkPostgres(cwd, migrated);
  expect((await clusterStatus(cwd)).workers).toHaveLength(1);
  again.signal('SIGINT');
  expect((await again.exited).code).toBe(0);
});
