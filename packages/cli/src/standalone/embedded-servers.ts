import { type ChildProcess, execFileSync, spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import {
  chownSync,
  existsSync,
  lstatSync,
  mkdirSync,
  openSync,
  readdirSync,
  readFileSync,
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

export async function startEmbeddedPostgres(
  requestedDir: string,
  port: number,
): Promise<EmbeddedServer & { url: string }> {
  const bin = postgresBin();
  const user = postgresUser();
  const dir = reachableDir(requestedDir, user);
  const data = join(dir, 'data');
  const sockets = join(dir, 'sockets');
  mkdirSync(data, { recursive: true, mode: 0o700 });
  mkdirSync(sockets, { recursive: true });
  if (user) for (const p of [dir, data, sockets]) chownSync(p, user.uid, user.gid);
  const as = user ? { uid: user.uid, gid: user.gid } : {};
  const logFile = join(dir, 'postgresql.log');
  if (!existsSync(join(data, 'PG_VERSION'))) {
    try {
      execFileSync(
        join(bin, 'initdb'),
        ['-D', data, '-U', 'postgres', '--auth=trust', '-E', 'UTF8', '--no-sync'],
        {
          ...as,
          stdio: 'pipe',
        },
      );
    } catch (err) {
      const detail = (err as { stderr?: Buffer }).stderr?.toString().trim() ?? String(err);
      throw new SchedError('STANDALONE', `initdb failed in ${data}: ${detail}`);
    }
  }
  // postmaster.pid's first line is the server's pid; a leftover server of ours is stopped first.
  await stopStale(join(data, 'postmaster.pid'), data);
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
      'max_connections=100',
    ],
    { detached: true, stdio: ['ignore', out, out], ...as },
  );
  const server = track('PostgreSQL', child, port);
  const adminUrl = `postgres://postgres@127.0.0.1:${port}/postgres`;
  await waitFor('PostgreSQL', logFile, () => canConnect(adminUrl), child, 60_000);
  const client = new pg.Client({ connectionString: adminUrl });
  await client.connect();
  try {
    const { rowCount } = await client.query(`SELECT 1 FROM pg_database WHERE datname = 'sched'`);
    if (!rowCount) await client.query('CREATE DATABASE sched');
  } finally {
    await client.end();
  }
  return { ...server, url: `postgres://postgres@127.0.0.1:${port}/sched` };
}

async function canConnect(url: string): Promise<boolean> {
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 1_000 });
  try {
    await client.connect();
    await client.end();
    return true;
  } catch {
    await client.end().catch(() => {});
    return false;
  }
}
