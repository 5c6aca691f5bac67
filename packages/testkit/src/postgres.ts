// A private PostgreSQL cluster for tests, from Debian's `postgresql` package. Never the
// machine-wide server: every cluster listens on 127.0.0.1 at a random port, with its own
// data folder and its Unix socket in that folder, trust auth, superuser `postgres`.
//
// initdb costs seconds, so it runs once per machine: a pristine cluster is made in
// <SCHED_TEST_TMP>/pg-template-<major>-<uid> (atomically, by rename) and each new cluster
// is a `cp -a` copy of it. When the harness runs as root, initdb and postgres run as the
// `postgres` user (PostgreSQL refuses to run as root).
//
// Durability is off (fsync, synchronous_commit, full_page_writes): test data is throwaway. A
// server the test kills -9 (`restart()`, the chaos suite's PostgreSQL faults) is started with
// `durableCommits`: synchronous_commit on, so a commit the server acknowledged survives the kill
// (WAL written to the OS at commit; fsync stays off: the OS does not crash here).

import { execFile } from 'node:child_process';
import { chownSync, existsSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import pg from 'pg';
import { registerCleanup } from './cleanup.js';
import { HarnessError } from './errors.js';
import { freePort } from './ports.js';
import { type ChildHandle, spawnProcess } from './processes.js';
import { makeServerDir, testkitRoot } from './temp-dirs.js';
import { timing } from './timing.js';

const execFileAsync = promisify(execFile);

export interface PgServer {
  readonly host: '127.0.0.1';
  readonly port: number;
  /** Superuser name (trust auth, no password). */
  readonly user: string;
  readonly pid: number;
  readonly dataDir: string;
  /** The server's log (kept after the run for debugging). */
  readonly logFile: string;
  /** `postgres://postgres@127.0.0.1:port/<db>` (default db `postgres`). */
  url(db?: string): string;
  /** Fast shutdown (SIGINT), then removes the data folder (the log is kept). */
  stop(): Promise<void>;
  /** kill -9 of the whole server (postmaster and backends); data is kept for inspection. */
  kill(): Promise<void>;
  /**
   * kill -9 of the whole server, then (after `downMs`, default 0) a start on the same port and
   * data (crash recovery): every connection is reset, and refused until the server is back.
   */
  restart(opts?: { downMs?: number }): Promise<void>;
}

export interface CreatedDatabase {
  readonly name: string;
  readonly url: string;
  /** DROP DATABASE … WITH (FORCE): disconnects remaining sessions. */
  drop(): Promise<void>;
}

export interface CreateDatabaseOptions {
  /** Create from this template database (e.g. a migrated schema) instead of template0/1. */
  template?: string;
  /** Readable part of the generated name (default: the test file's base name when known). */
  prefix?: string;
}

interface RunAs {
  uid?: number;
  gid?: number;
}

function pgBinDir(): string {
  if (process.env.SCHED_TEST_PG_BIN) return process.env.SCHED_TEST_PG_BIN;
  const base = '/usr/lib/postgresql';
  const versions = existsSync(base)
    ? readdirSync(base)
        .filter((v) => existsSync(join(base, v, 'bin', 'initdb')))
        .sort((a, b) => Number(b) - Number(a))
    : [];
  const newest = versions[0];
  if (newest === undefined) {
    throw new HarnessError(
      'TESTKIT_NOT_INSTALLED',
      `PostgreSQL not installed: no ${base}/<version>/bin/initdb (apt-get install postgresql)`,
    );
  }
  return join(base, newest, 'bin');
}

/** Root cannot run PostgreSQL: use the `postgres` user then; otherwise the current user. */
function runAs(): RunAs {
  if (process.getuid?.() !== 0) return {};
  const passwd = readFileSync('/etc/passwd', 'utf8');
  const line = passwd.split('\n').find((l) => l.startsWith('postgres:'));
  const fields = line?.split(':');
  if (!fields || fields[2] === undefined || fields[3] === undefined) {
    throw new HarnessError(
      'TESTKIT_NOT_INSTALLED',
      'running as root but there is no `postgres` user to run PostgreSQL as',
    );
  }
  return { uid: Number(fields[2]), gid: Number(fields[3]) };
}

function chownTree(path: string, as: RunAs): Promise<unknown> | undefined {
  if (as.uid === undefined || as.gid === undefined) return undefined;
  return execFileAsync('chown', ['-R', `${as.uid}:${as.gid}`, path]);
}

async function pristineCluster(bin: string, as: RunAs): Promise<string> {
  const major = bin.split('/').at(-2) ?? 'pg';
  const templateDir = join(testkitRoot(), `pg-template-${major}-${process.getuid?.() ?? 0}`);
  if (existsSync(join(templateDir, '.sched-complete'))) return templateDir;
  // Build beside it and rename: concurrent test files race safely (the loser discards its copy).
  const work = makeServerDir('pg');
  const dataDir = join(work, 'data');
  const ownerChange = chownTree(work, as);
  if (ownerChange) await ownerChange;
  const initdb = spawnProcess(
    join(bin, 'initdb'),
    [
      '-D',
      dataDir,
      '-U',
      'postgres',
      '--auth=trust',
      '--no-sync',
      '-E',
      'UTF8',
      '--locale=C',
      '--no-instructions',
    ],
    { name: 'initdb', cwd: work, logFile: join(work, 'initdb.log'), ...as },
  );
  const result = await initdb.exited;
  if (result.code !== 0) {
    throw new HarnessError(
      'TESTKIT_SERVER_START',
      `initdb failed (code ${result.code}, signal ${result.signal}):\n${initdb.output()}`,
    );
  }
  writeFileSync(join(dataDir, '.sched-complete'), new Date().toISOString());
  try {
    renameSync(dataDir, templateDir);
  } catch (error) {
    if (!existsSync(join(templateDir, '.sched-complete'))) throw error;
  }
  rmSync(work, { recursive: true, force: true });
  return templateDir;
}

class PgProcess implements PgServer {
  readonly host = '127.0.0.1' as const;
  readonly user = 'postgres';
  readonly logFile: string;
  readonly dataDir: string;
  child: ChildHandle | undefined;

  constructor(
    readonly dir: string,
    public port: number,
    private readonly bin: string,
    private readonly as: RunAs,
    private readonly durableCommits = false,
  ) {
    this.dataDir = join(dir, 'data');
    this.logFile = join(dir, 'postgres.log');
  }

  get pid(): number {
    return this.child?.running ? this.child.pid : 0;
  }

  url(db = 'postgres'): string {
    return `postgres://${this.user}@${this.host}:${this.port}/${encodeURIComponent(db)}`;
  }

  async start(bin: string, as: RunAs): Promise<'ok' | 'port-in-use'> {
    writeFileSync(this.logFile, `--- start ${new Date().toISOString()} port ${this.port}\n`, { flag: 'a' });
    const child = spawnProcess(
      join(bin, 'postgres'),
      [
        '-D',
        this.dataDir,
        '-p',
        String(this.port),
        '-k',
        this.dataDir,
        '-c',
        'listen_addresses=127.0.0.1',
        '-c',
        'fsync=off',
        '-c',
        `synchronous_commit=${this.durableCommits ? 'on' : 'off'}`,
        '-c',
        'full_page_writes=off',
        '-c',
        'max_connections=300',
        '-c',
        'shared_buffers=32MB',
        '-c',
        'log_line_prefix=%m [%p] %d ',
      ],
      { name: `postgres:${this.port}`, cwd: this.dir, logFile: this.logFile, ...as },
    );
    this.child = child;
    try {
      await child.waitForOutput(/database system is ready to accept connections/, timing.forWaiting() * 3);
    } catch (error) {
      if (/could not bind|Address already in use/.test(child.output())) {
        await child.kill9();
        return 'port-in-use';
      }
      await child.kill9();
      throw new HarnessError('TESTKIT_SERVER_START', `PostgreSQL did not start; log ${this.logFile}`, {
        cause: error,
      });
    }
    return 'ok';
  }

  async stop(): Promise<void> {
    if (this.child?.running) await this.child.stop(timing.forWaiting(), 'SIGINT');
    rmSync(this.dataDir, { recursive: true, force: true });
  }

  async kill(): Promise<void> {
    if (this.child?.running) await this.child.kill9();
  }

  async restart(opts: { downMs?: number } = {}): Promise<void> {
    await this.kill();
    if (opts.downMs) await new Promise((r) => setTimeout(r, opts.downMs));
    // The backends of a killed postmaster exit on their own (they watch it); the port is the
    // server's own, so a start that finds it busy waits for them rather than moving.
    for (let attempt = 1; ; attempt++) {
      if ((await this.start(this.bin, this.as)) === 'ok') return;
      if (attempt >= 20)
        throw new HarnessError('TESTKIT_SERVER_START', `PostgreSQL did not restart on port ${this.port}`);
      await new Promise((r) => setTimeout(r, 250));
    }
  }
}

/** Starts a private PostgreSQL cluster on a random loopback port (killed at the end of the test file). */
export interface StartPostgresOptions {
  /**
   * Acknowledged commits survive a kill -9 of the server (synchronous_commit on). Needed by a
   * test that restarts the server and checks what the database kept. @defaultValue false
   */
  durableCommits?: boolean;
}

export async function startPostgres(opts: StartPostgresOptions = {}): Promise<PgServer> {
  const bin = pgBinDir();
  const as = runAs();
  const template = await pristineCluster(bin, as);
  const dir = makeServerDir('pg');
  const server = new PgProcess(dir, await freePort(), bin, as, opts.durableCommits ?? false);
  await execFileAsync('cp', ['-a', template, server.dataDir]);
  rmSync(join(server.dataDir, '.sched-complete'), { force: true });
  if (as.uid !== undefined) chownSync(dir, as.uid, as.gid ?? as.uid);
  for (let attempt = 1; ; attempt++) {
    const outcome = await server.start(bin, as);
    if (outcome === 'ok') break;
    if (attempt >= 5)
      throw new HarnessError(
        'TESTKIT_SERVER_START',
        `PostgreSQL: no free port after ${attempt} attempts; log ${server.logFile}`,
      );
    server.port = await freePort();
  }
  registerCleanup(`stop PostgreSQL ${server.url()}`, () => server.stop());
  return server;
}

let databaseCounter = 0;

/**
 * Creates a fresh database (by default on the shared server) named
 * `t_<prefix>_<pid>_<n>_<random>`, optionally from a template database.
 */
export async function createDatabase(
  server?: Pick<PgServer, 'url'>,
  opts: CreateDatabaseOptions = {},
): Promise<CreatedDatabase> {
  const pgServer = server ?? (await (await import('./shared-servers.js')).sharedPostgres());
  databaseCounter += 1;
  const prefix = (opts.prefix ?? currentTestFileName() ?? 'db')
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, '_')
    .slice(0, 30);
  const name = `t_${prefix}_${process.pid}_${databaseCounter}_${Math.random().toString(36).slice(2, 7)}`;
  const template = opts.template;
  if (template !== undefined && !/^[A-Za-z0-9_]+$/.test(template)) {
    throw new HarnessError(
      'TESTKIT_INVALID_ARGUMENT',
      `createDatabase template must match [A-Za-z0-9_]+, got '${template}'`,
    );
  }
  await withAdminClient(pgServer, (client) =>
    client.query(`CREATE DATABASE "${name}"${template ? ` TEMPLATE "${template}"` : ''}`),
  );
  return {
    name,
    url: pgServer.url(name),
    drop: async () => {
      await withAdminClient(pgServer, (client) =>
        client.query(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`),
      );
    },
  };
}

/**
 * Makes (once per server, even across test processes) a template database `name` filled by
 * `build(url)` — e.g. running the migrations — and returns its name for
 * `createDatabase(server, { template })`. Concurrent callers wait on an advisory lock; the
 * first builds, the others find it ready. A half-built leftover (a build that failed) is
 * dropped and rebuilt. The finished template refuses connections, so nothing can hold it
 * open while databases are copied from it. Put a version or hash in `name` when `build`
 * can change (the shared server lives only for one run).
 */
export async function createTemplateDatabase(
  name: string,
  build: (url: string) => Promise<void>,
  server?: Pick<PgServer, 'url'>,
): Promise<string> {
  if (!/^[A-Za-z0-9_]+$/.test(name)) {
    throw new HarnessError(
      'TESTKIT_INVALID_ARGUMENT',
      `createTemplateDatabase name must match [A-Za-z0-9_]+, got '${name}'`,
    );
  }
  const pgServer = server ?? (await (await import('./shared-servers.js')).sharedPostgres());
  return withAdminClient(pgServer, async (admin) => {
    await admin.query('select pg_advisory_lock(hashtext($1))', [`sched-template:${name}`]);
    try {
      const { rows } = await admin.query<{ datistemplate: boolean }>(
        'select datistemplate from pg_database where datname = $1',
        [name],
      );
      if (rows[0]?.datistemplate) return name;
      if (rows[0]) await admin.query(`DROP DATABASE "${name}" WITH (FORCE)`);
      await admin.query(`CREATE DATABASE "${name}"`);
      try {
        await build(pgServer.url(name));
      } catch (error) {
        await admin.query(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`).catch(() => undefined);
        throw error;
      }
      // Close whatever `build` left open, then seal it as a template.
      await admin.query(`ALTER DATABASE "${name}" ALLOW_CONNECTIONS false`);
      await admin.query('select pg_terminate_backend(pid) from pg_stat_activity where datname = $1', [name]);
      await admin.query(`ALTER DATABASE "${name}" IS_TEMPLATE true`);
      return name;
    } finally {
      await admin.query('select pg_advisory_unlock(hashtext($1))', [`sched-template:${name}`]);
    }
  });
}

async function withAdminClient<T>(
  server: Pick<PgServer, 'url'>,
  fn: (client: pg.Client) => Promise<T>,
): Promise<T> {
  const client = new pg.Client({
    connectionString: server.url('postgres'),
    connectionTimeoutMillis: timing.forWaiting(),
  });
  await client.connect();
  try {
    return await fn(client);
  } finally {
    await client.end();
  }
}

function currentTestFileName(): string | undefined {
  // vitest sets this in workers; it names the file for readable database names.
  const state = (globalThis as { __vitest_worker__?: { filepath?: string } }).__vitest_worker__;
  const path = state?.filepath;
  return path
    ? (path
        .split('/')
        .pop()
        ?.replace(/\.test\.ts$/, '') ?? undefined)
    : undefined;
}
