import { type ChildProcess, execFileSync, spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import {
  chmodSync,
  chownSync,
  existsSync,
  lstatSync,
  mkdirSync,
  openSync,
  readdirSync,
  readFileSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { connect, createServer } from 'node:net';
import { join } from 'node:path';
import { SchedError } from '@sched/core';
import pg from 'pg';

/**
 * ZooKeeper and PostgreSQL for `sched-standalone`, started as child processes from the system's
 * installations (Debian's `zookeeper` and `postgresql` packages) with their data in a local
 * folder that survives restarts. Each child runs in its own process group, so Ctrl-C reaches
 * only sched-standalone, which then stops everything in order: sched first, the servers last.
 */

export interface EmbeddedServer {
  name: string;
  port: number;
  pid: number;
  /** Stops the server and waits for it to exit (SIGKILL after `graceMs`). */
  stop(graceMs?: number): Promise<void>;
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

/** Whether something listens on 127.0.0.1:`port`. */
export async function portOpen(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1');
    socket.setTimeout(2_000, () => {
      socket.destroy();
      resolve(true); // accepted but silent: in use all the same
    });
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

/**
 * A previous sched-standalone that was killed (SIGKILL, a crash) cannot stop its servers: they
 * run in their own process groups. Before starting, stop the one recorded in `pidFile` if it is
 * still running and is really ours (its command line names `marker`, our data folder).
 */
async function stopStale(pidFile: string, marker: string): Promise<void> {
  if (!existsSync(pidFile)) return;
  const pid = Number(readFileSync(pidFile, 'utf8').split('\n')[0]);
  if (!Number.isInteger(pid) || pid <= 1) return;
  let cmdline = '';
  try {
    cmdline = readFileSync(`/proc/${pid}/cmdline`, 'utf8').replace(/\0/g, ' ');
  } catch {
    return; // not running
  }
  if (!cmdline.includes(marker)) return;
  process.stdout.write(`sched-standalone: stopping a server left running by an earlier run (pid ${pid})\n`);
  try {
    process.kill(pid, 'SIGTERM');
  } catch {
    return;
  }
  for (let i = 0; i < 100 && existsSync(`/proc/${pid}`); i++) await new Promise((r) => setTimeout(r, 100));
  if (existsSync(`/proc/${pid}`)) process.kill(pid, 'SIGKILL');
}

function track(name: string, child: ChildProcess, port: number): EmbeddedServer {
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  return {
    name,
    port,
    pid: child.pid as number,
    async stop(graceMs = 15_000) {
      if (child.exitCode !== null || child.signalCode !== null) return;
      try {
        process.kill(-(child.pid as number), name === 'PostgreSQL' ? 'SIGINT' : 'SIGTERM');
      } catch {
        return;
      }
      const timer = setTimeout(() => {
        try {
          process.kill(-(child.pid as number), 'SIGKILL');
        } catch {
          // already gone
        }
      }, graceMs);
      await exited;
      clearTimeout(timer);
    },
  };
}

async function waitFor(
  what: string,
  logFile: string,
  check: () => Promise<boolean>,
  child: ChildProcess,
  timeoutMs: number,
) {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) {
      throw new SchedError('STANDALONE', `${what} exited at start (code ${child.exitCode}); see ${logFile}`);
    }
    if (await check()) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new SchedError('STANDALONE', `${what} did not start within ${timeoutMs} ms; see ${logFile}`);
}

function findZooKeeperJar(): string {
  const jar = '/usr/share/java/zookeeper.jar';
  if (!existsSync(jar)) {
    throw new SchedError(
      'STANDALONE',
      `ZooKeeper is not installed (${jar} is missing); install Debian's package: apt-get install zookeeper (npm start does this)`,
    );
  }
  return jar;
}

export async function startEmbeddedZooKeeper(dir: string, port: number): Promise<EmbeddedServer> {
  const jar = findZooKeeperJar();
  const cfg = join(dir, 'zoo.cfg');
  await stopStale(join(dir, 'zookeeper.pid'), cfg);
  if (await portOpen(port)) {
    throw new SchedError(
      'STANDALONE',
      `port ${port} for ZooKeeper is in use; is another sched-standalone running here?`,
    );
  }
  mkdirSync(join(dir, 'data'), { recursive: true });
  writeFileSync(
    cfg,
    [
      'tickTime=500',
      `dataDir=${join(dir, 'data')}`,
      `clientPort=${port}`,
      'clientPortAddress=127.0.0.1',
      'minSessionTimeout=1000',
      'maxSessionTimeout=60000',
      'admin.enableServer=false',
      '4lw.commands.whitelist=ruok,srvr,mntr',
      '',
    ].join('\n'),
  );
  const logFile = join(dir, 'zookeeper.log');
  const out = openSync(logFile, 'a');
  const child = spawn(
    'java',
    [
      '-Xmx256m',
      '-Dzookeeper.admin.enableServer=false',
      '-cp',
      `/etc/zookeeper/conf:${jar}`,
      'org.apache.zookeeper.server.ZooKeeperServerMain',
      cfg,
    ],
    { detached: true, stdio: ['ignore', out, out] },
  );
  writeFileSync(join(dir, 'zookeeper.pid'), `${child.pid}\n`);
  const server = track('ZooKeeper', child, port);
  await waitFor('ZooKeeper', logFile, () => ruok(port), child, 90_000);
  return server;
}

function ruok(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1', () => socket.end('ruok'));
    // Something that accepts and never answers (not ZooKeeper) must not hang the start.
    socket.setTimeout(2_000, () => socket.destroy());
    let reply = '';
    socket.on('data', (d) => {
      reply += d.toString();
    });
    socket.on('close', () => resolve(reply === 'imok'));
    socket.on('error', () => resolve(false));
  });
}

function postgresBin(): string {
  const base = '/usr/lib/postgresql';
  const versions = existsSync(base)
    ? readdirSync(base)
        .filter((v) => existsSync(join(base, v, 'bin', 'postgres')))
        .sort((a, b) => Number(b) - Number(a))
    : [];
  if (versions.length === 0) {
    throw new SchedError(
      'STANDALONE',
      "PostgreSQL is not installed (no /usr/lib/postgresql/*/bin/postgres); install Debian's package: apt-get install postgresql (npm start does this)",
    );
  }
  return join(base, versions[0] as string, 'bin');
}

/** When running as root, PostgreSQL must run as the `postgres` user. */
function postgresUser(): { uid: number; gid: number } | null {
  if (process.getuid?.() !== 0) return null;
  const line = readFileSync('/etc/passwd', 'utf8')
    .split('\n')
    .find((l) => l.startsWith('postgres:'));
  const parts = line?.split(':');
  if (!parts)
    throw new SchedError('STANDALONE', 'running as root, but there is no postgres user to run PostgreSQL as');
  return { uid: Number(parts[2]), gid: Number(parts[3]) };
}

/**
 * Running as root, PostgreSQL runs as `postgres`, which must be able to reach its data folder.
 * When the project folder is not reachable for it (e.g. under a private home folder), the data
 * goes to /var/lib/sched-standalone/<hash of the folder> instead, with a symlink in its place.
 */
function reachableDir(dir: string, user: { uid: number; gid: number } | null): string {
  if (!user) return dir;
  const parent = join(dir, '..');
  const ok =
    spawnSync('test', ['-x', parent, '-a', '-r', parent], { uid: user.uid, gid: user.gid }).status === 0;
  if (ok) return dir;
  const hash = createHash('sha256').update(dir).digest('hex').slice(0, 16);
  const target = join('/var/lib/sched-standalone', hash);
  mkdirSync(target, { recursive: true });
  let linked = false;
  try {
    linked = lstatSync(dir).isSymbolicLink();
  } catch {
    symlinkSync(target, dir);
    linked = true;
  }
  if (!linked) {
    throw new SchedError(
      'STANDALONE',
      `the postgres user cannot reach ${dir}; move the data folder (--data-dir) somewhere it can read, e.g. under /var/lib`,
    );
  }
  return target;
}

/**
 * pg_hba.conf of the embedded PostgreSQL (docs/security.md#standalone): every connection, over TCP
 * or the socket, needs the generated password (SCRAM); the socket's folder is private as well.
 */
export const STANDALONE_PG_HBA = [
  '# Written by sched-standalone at every start (docs/security.md#standalone); edits are lost.',
  '# Every connection needs the password in .sched-data/standalone.json (SCRAM); nothing is trusted.',
  "# The socket folder (postgres/sockets) is private to the server's user (mode 0700).",
  '# TYPE  DATABASE  USER  ADDRESS       METHOD',
  'local   all       all                 scram-sha-256',
  'host    all       all   127.0.0.1/32  scram-sha-256',
  'host    all       all   ::1/128       scram-sha-256',
  '',
].join('\n');

/** Settings both the server and the single-user backend that sets the password run with. */
const PG_SECURITY_SETTINGS = ['-c', 'password_encryption=scram-sha-256'];

/**
 * Starts the embedded PostgreSQL with `password` for its superuser `postgres`, and returns its URL
 * (with the password) for the database `sched`. Before the server starts, the password is set in
 * single-user mode (no connection, nothing listening) and pg_hba.conf rewritten, at every start: the
 * password in standalone.json is the truth, and a data folder of an earlier version (trust
 * authentication) is migrated without ever listening with trust. `migrated` says when it was one.
 */
export async function startEmbeddedPostgres(
  requestedDir: string,
  port: number,
  password: string,
): Promise<EmbeddedServer & { url: string; migrated: boolean; sockets: string }> {
  const bin = postgresBin();
  const user = postgresUser();
  const dir = reachableDir(requestedDir, user);
  const data = join(dir, 'data');
  const sockets = join(dir, 'sockets');
  mkdirSync(data, { recursive: true, mode: 0o700 });
  mkdirSync(sockets, { recursive: true, mode: 0o700 });
  chmodSync(sockets, 0o700); // earlier versions made it with the default mode (0755)
  if (user) for (const p of [dir, data, sockets]) chownSync(p, user.uid, user.gid);
  const as = user ? { uid: user.uid, gid: user.gid } : {};
  const logFile = join(dir, 'postgresql.log');
  const hba = join(data, 'pg_hba.conf');
  let migrated = false;
  if (!existsSync(join(data, 'PG_VERSION'))) {
    // The password goes to initdb in a file only its user can read, removed at once.
    const pwfile = join(dir, '.initdb-password');
    writeFileSync(pwfile, `${password}\n`, { mode: 0o600 });
    if (user) chownSync(pwfile, user.uid, user.gid);
    try {
      execFileSync(
        join(bin, 'initdb'),
        [
          '-D',
          data,
          '-U',
          'postgres',
          '--auth=scram-sha-256',
          `--pwfile=${pwfile}`,
          '-E',
          'UTF8',
          '--no-sync',
        ],
        { ...as, stdio: 'pipe' },
      );
    } catch (err) {
      const detail = (err as { stderr?: Buffer }).stderr?.toString().trim() ?? String(err);
      throw new SchedError('STANDALONE', `initdb failed in ${data}: ${detail}`);
    } finally {
      rmSync(pwfile, { force: true });
    }
  } else {
    migrated = !readFileSync(hba, 'utf8').startsWith(STANDALONE_PG_HBA.split('\n')[0] as string);
  }
  // postmaster.pid's first line is the server's pid; a leftover server of ours is stopped first.
  await stopStale(join(data, 'postmaster.pid'), data);
  setPasswordOffline(bin, data, password, as);
  writeFileSync(hba, STANDALONE_PG_HBA, { mode: 0o600 });
  if (user) chownSync(hba, user.uid, user.gid);
  if (await portOpen(port)) {
    throw new SchedError(
      'STANDALONE',
      `port ${port} for PostgreSQL is in use; is another sched-standalone running here?`,
    );
  }
  const out = openSync(logFile, 'a');
  if (user) chownSync(logFile, user.uid, user.gid);
  const child = spawn(
    join(bin, 'postgres'),
    [
      '-D',
      data,
      '-p',
      String(port),
      '-k',
      sockets,
      '-c',
      'listen_addresses=127.0.0.1',
      '-c',
      'unix_socket_permissions=0700',
      ...PG_SECURITY_SETTINGS,
      '-c',
      'max_connections=100',
    ],
    { detached: true, stdio: ['ignore', out, out], ...as },
  );
  const server = track('PostgreSQL', child, port);
  const secret = encodeURIComponent(password);
  const adminUrl = `postgres://postgres:${secret}@127.0.0.1:${port}/postgres`;
  await waitFor('PostgreSQL', logFile, () => canConnect(adminUrl), child, 60_000);
  const client = new pg.Client({ connectionString: adminUrl });
  await client.connect();
  try {
    const { rowCount } = await client.query(`SELECT 1 FROM pg_database WHERE datname = 'sched'`);
    if (!rowCount) await client.query('CREATE DATABASE sched');
  } finally {
    await client.end();
  }
  return { ...server, url: `postgres://postgres:${secret}@127.0.0.1:${port}/sched`, migrated, sockets };
}

/**
 * Sets the superuser's password with PostgreSQL's single-user mode: the server must not be
 * running, and nothing listens meanwhile. The statement goes in on stdin (not in the process list).
 */
function setPasswordOffline(bin: string, data: string, password: string, as: { uid?: number; gid?: number }) {
  const sql = `ALTER ROLE postgres WITH PASSWORD '${password.replace(/'/g, "''")}';\n`;
  const r = spawnSync(join(bin, 'postgres'), ['--single', '-D', data, ...PG_SECURITY_SETTINGS, 'postgres'], {
    ...as,
    input: sql,
    stdio: ['pipe', 'pipe', 'pipe'],
    timeout: 60_000,
  });
  const output = `${r.stdout?.toString() ?? ''}${r.stderr?.toString() ?? ''}`;
  if (r.status !== 0 || /\bERROR:/.test(output)) {
    throw new SchedError(
      'STANDALONE',
      `could not set the PostgreSQL password in ${data} (single-user mode, exit ${r.status ?? r.signal}): ${
        output.trim().split('\n').slice(-3).join(' ') || String(r.error ?? '')
      }`,
    );
  }
}

async function canConnect(url: string): Promise<boolean> {
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 1_000 });
  try {
    await client.connect();
    await client.end();
    return true;
  } catch (err) {
    await client.end().catch(() => {});
    // A refused password will not be accepted by waiting: say so at once.
    const code = (err as { code?: string }).code;
    if (code === '28P01' || code === '28000') {
      throw new SchedError('STANDALONE', `PostgreSQL refused the login: ${(err as Error).message}`);
    }
    return false;
  }
}
