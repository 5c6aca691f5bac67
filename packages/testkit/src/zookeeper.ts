// Real ZooKeeper servers for tests, from Debian's `zookeeper` package (a JVM per server):
//   startZooKeeper()          one standalone server (ZooKeeperServerMain)
//   startZooKeeperEnsemble()  a 3-server quorum (QuorumPeerMain), each server stoppable,
//                             killable (-9) and restartable on its own
//   zkChroot()                a unique chroot node, so test files can share one server
// Every server binds 127.0.0.1 on a random port, keeps its data and log in its own folder
// (<SCHED_TEST_TMP>/zk-…/zookeeper.log) and is killed when the test file ends.
//
// Server lifecycle (per ZkServer):
//   state     | start()/restart()     | stop()            | kill()             | pause()/resume()
//   stopped   | -> running (wait srvr)| no-op             | no-op              | no-op
//   running   | restart: stop, start  | SIGTERM -> stopped| SIGKILL -> stopped | SIGSTOP / SIGCONT
// (stop and kill also work on a paused server: SIGCONT follows SIGTERM, SIGKILL needs none.)

import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { createConnection } from 'node:net';
import { join } from 'node:path';
import zookeeper from 'node-zookeeper-client';
import { registerCleanup } from './cleanup.js';
import { HarnessError } from './errors.js';
import { freePort } from './ports.js';
import { type ChildHandle, spawnProcess } from './processes.js';
import { makeServerDir } from './temp-dirs.js';
import { timing } from './timing.js';

export interface ZkServer {
  readonly host: '127.0.0.1';
  readonly port: number;
  /** `127.0.0.1:port`. */
  readonly connectString: string;
  /** Pid of the current JVM (changes on restart); 0 while stopped. */
  readonly pid: number;
  readonly dataDir: string;
  /** Where the server's own log goes (kept after the run for debugging). */
  readonly logFile: string;
  readonly running: boolean;
  /** Graceful stop (SIGTERM); data is kept, so `restart()` brings the same state back. */
  stop(): Promise<void>;
  /** kill -9; data is kept. */
  kill(): Promise<void>;
  /** Starts it again (stopping it first if running) on the same port and data. */
  restart(): Promise<void>;
  /** SIGSTOP the JVM: to every client it looks like a blackhole (sockets open, no replies). */
  pause(): void;
  /** SIGCONT. */
  resume(): void;
  /** Sends a four-letter word (`srvr`, `mntr`, `cons`, `dump`, …) and returns the reply. */
  fourLetterWord(word: string): Promise<string>;
}

export interface ZkEnsemble {
  readonly servers: ZkServer[];
  /** `127.0.0.1:p1,127.0.0.1:p2,127.0.0.1:p3`. */
  readonly connectString: string;
  stop(): Promise<void>;
}

export interface StartZooKeeperOptions {
  /** ZooKeeper tick in ms (default 200): minimum session timeout is 2 ticks. */
  tickTime?: number;
  /** The server's `minSessionTimeout` in ms (default 2 ticks): a shorter request is granted this. */
  minSessionTimeout?: number;
  /** The server's `maxSessionTimeout` in ms (default 60000): a longer request is granted this. */
  maxSessionTimeout?: number;
}

const javaBin = process.env.SCHED_TEST_JAVA ?? 'java';
const zkJar = '/usr/share/java/zookeeper.jar';
// slf4j-simple turns ZooKeeper's (otherwise silent, NOP) logging into stderr lines, which
// the harness writes to zookeeper.log in the server folder.
const slf4jSimple = '/usr/share/java/slf4j-simple.jar';

function classPath(): string {
  if (!existsSync(zkJar)) {
    throw new HarnessError(
      'TESTKIT_NOT_INSTALLED',
      `ZooKeeper not installed: ${zkJar} is missing (apt-get install zookeeper)`,
    );
  }
  return ['/etc/zookeeper/conf', zkJar, ...(existsSync(slf4jSimple) ? [slf4jSimple] : [])].join(':');
}

function jvmArgs(): string[] {
  return [
    // Small, fast-starting JVM: the servers do little work in tests.
    '-Xms32m',
    '-Xmx256m',
    '-XX:+UseSerialGC',
    '-XX:TieredStopAtLevel=1',
    '-Djava.net.preferIPv4Stack=true',
    '-Dzookeeper.admin.enableServer=false',
    '-Dzookeeper.4lw.commands.whitelist=*',
    '-Dorg.slf4j.simpleLogger.defaultLogLevel=info',
    '-Dorg.slf4j.simpleLogger.showDateTime=true',
    '-Dorg.slf4j.simpleLogger.dateTimeFormat=HH:mm:ss.SSS',
    '-cp',
    classPath(),
  ];
}

/** Sends a ZooKeeper four-letter word and returns the whole reply (the server closes after it). */
export function fourLetterWord(host: string, port: number, word: string, timeoutMs = 2000): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = createConnection({ host, port });
    let reply = '';
    const timer = setTimeout(() => {
      socket.destroy();
      reject(
        new HarnessError(
          'TESTKIT_TIMEOUT',
          `four-letter word '${word}' to ${host}:${port}: no reply within ${timeoutMs} ms`,
        ),
      );
    }, timeoutMs);
    socket.setEncoding('utf8');
    socket.on('connect', () => socket.write(word));
    socket.on('data', (chunk: string) => {
      reply += chunk;
    });
    socket.on('error', (error) => {
      clearTimeout(timer);
      reject(error);
    });
    socket.on('close', () => {
      clearTimeout(timer);
      resolve(reply);
    });
  });
}

interface ZkProcessConfig {
  kind: 'standalone' | 'quorum';
  dir: string;
  tickTime: number;
  minSessionTimeout?: number;
  maxSessionTimeout?: number;
  /** For quorum members: server id and the full `server.N=` lines. */
  myId?: number;
  serverLines?: string[];
}

/** One ZooKeeper JVM with a fixed folder; the port may be re-chosen before the first start. */
class ZkProcess implements ZkServer {
  readonly host = '127.0.0.1' as const;
  readonly dataDir: string;
  readonly logFile: string;
  private child: ChildHandle | undefined;
  private readonly cfgFile: string;

  constructor(
    private readonly config: ZkProcessConfig,
    public port: number,
  ) {
    this.dataDir = join(config.dir, 'data');
    this.logFile = join(config.dir, 'zookeeper.log');
    this.cfgFile = join(config.dir, 'zoo.cfg');
    mkdirSync(this.dataDir, { recursive: true });
    if (config.myId !== undefined) writeFileSync(join(this.dataDir, 'myid'), `${config.myId}\n`);
  }

  get connectString(): string {
    return `${this.host}:${this.port}`;
  }

  get pid(): number {
    return this.child?.running ? this.child.pid : 0;
  }

  get running(): boolean {
    return this.child?.running ?? false;
  }

  writeConfig(): void {
    const { tickTime } = this.config;
    const lines = [
      `tickTime=${tickTime}`,
      `dataDir=${this.dataDir}`,
      `clientPort=${this.port}`,
      'clientPortAddress=127.0.0.1',
      `minSessionTimeout=${this.config.minSessionTimeout ?? tickTime * 2}`,
      `maxSessionTimeout=${this.config.maxSessionTimeout ?? 60_000}`,
      'admin.enableServer=false',
      '4lw.commands.whitelist=*',
      // No fsync and small preallocated logs: test data is throwaway and disks are shared.
      'forceSync=no',
      'preAllocSize=1024',
      'maxClientCnxns=0',
      'autopurge.purgeInterval=0',
    ];
    if (this.config.kind === 'quorum') {
      // Generous sync limits (in ticks): a follower on a busy 2-core machine must not drop out.
      lines.push('initLimit=50', 'syncLimit=25', ...(this.config.serverLines ?? []));
    }
    writeFileSync(this.cfgFile, `${lines.join('\n')}\n`);
  }

  /** Starts the JVM and resolves once it serves clients (`srvr` reports a mode). */
  async start(readyTimeoutMs = timing.forWaiting() * 3): Promise<void> {
    if (this.running) return;
    this.writeConfig();
    const mainClass =
      this.config.kind === 'quorum'
        ? 'org.apache.zookeeper.server.quorum.QuorumPeerMain'
        : 'org.apache.zookeeper.server.ZooKeeperServerMain';
    writeFileSync(this.logFile, `--- start ${new Date().toISOString()} port ${this.port}\n`, { flag: 'a' });
    const child = spawnProcess(javaBin, [...jvmArgs(), mainClass, this.cfgFile], {
      name: `zookeeper${this.config.myId !== undefined ? `-${this.config.myId}` : ''}:${this.port}`,
      cwd: this.config.dir,
      logFile: this.logFile,
    });
    this.child = child;
    const deadline = performance.now() + readyTimeoutMs;
    for (;;) {
      if (!child.running) {
        throw new ZkStartError(
          `ZooKeeper on port ${this.port} exited during start; log ${this.logFile}:\n${tail(child.output())}`,
          /Address already in use|BindException/.test(child.output()),
        );
      }
      const reply = await fourLetterWord(this.host, this.port, 'srvr', 1000).catch(() => '');
      if (/^Mode: /m.test(reply)) return;
      if (performance.now() > deadline) {
        await child.kill9();
        throw new ZkStartError(
          `ZooKeeper on port ${this.port} not serving within ${readyTimeoutMs} ms; log ${this.logFile}:\n${tail(child.output())}`,
          false,
        );
      }
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }

  async stop(): Promise<void> {
    if (!this.child?.running) return;
    await this.child.stop(timing.forWaiting());
  }

  async kill(): Promise<void> {
    if (!this.child?.running) return;
    await this.child.kill9();
  }

  async restart(): Promise<void> {
    await this.stop();
    await this.start();
  }

  pause(): void {
    this.child?.pause();
  }

  resume(): void {
    this.child?.resume();
  }

  fourLetterWord(word: string): Promise<string> {
    return fourLetterWord(this.host, this.port, word);
  }
}

class ZkStartError extends HarnessError {
  constructor(
    message: string,
    readonly portInUse: boolean,
  ) {
    super('TESTKIT_SERVER_START', message);
  }
}

function tail(text: string, lines = 20): string {
  return text.split('\n').slice(-lines).join('\n');
}

/** Starts a private standalone ZooKeeper on a random loopback port (killed at the end of the test file). */
export async function startZooKeeper(opts: StartZooKeeperOptions = {}): Promise<ZkServer> {
  const tickTime = opts.tickTime ?? 200;
  const dir = makeServerDir('zk');
  const server = new ZkProcess(
    {
      kind: 'standalone',
      dir,
      tickTime,
      ...(opts.minSessionTimeout === undefined ? {} : { minSessionTimeout: opts.minSessionTimeout }),
      ...(opts.maxSessionTimeout === undefined ? {} : { maxSessionTimeout: opts.maxSessionTimeout }),
    },
    await freePort(),
  );
  for (let attempt = 1; ; attempt++) {
    try {
      await server.start();
      break;
    } catch (error) {
      if (!(error instanceof ZkStartError && error.portInUse && attempt < 5)) throw error;
      server.port = await freePort();
    }
  }
  registerCleanup(`stop ZooKeeper ${server.connectString}`, () => server.kill());
  return server;
}

export interface StartEnsembleOptions extends StartZooKeeperOptions {
  /** Number of servers (default 3). */
  size?: number;
}

/** Starts a ZooKeeper quorum of `size` servers (default 3) on loopback; all killed at the end of the test file. */
export async function startZooKeeperEnsemble(opts: StartEnsembleOptions = {}): Promise<ZkEnsemble> {
  const size = opts.size ?? 3;
  const tickTime = opts.tickTime ?? 200;
  if (!Number.isInteger(size) || size < 1)
    throw new HarnessError(
      'TESTKIT_INVALID_ARGUMENT',
      `ensemble size must be a positive integer, got ${size}`,
    );
  for (let attempt = 1; ; attempt++) {
    const root = makeServerDir('zke');
    const ports: { client: number; peer: number; election: number }[] = [];
    const taken = new Set<number>();
    const pick = async (): Promise<number> => {
      for (;;) {
        const port = await freePort();
        if (!taken.has(port)) {
          taken.add(port);
          return port;
        }
      }
    };
    for (let i = 0; i < size; i++)
      ports.push({ client: await pick(), peer: await pick(), election: await pick() });
    const serverLines = ports.map((p, i) => `server.${i + 1}=127.0.0.1:${p.peer}:${p.election}`);
    const servers = ports.map((p, i) => {
      const dir = join(root, `server-${i + 1}`);
      mkdirSync(dir, { recursive: true });
      return new ZkProcess(
        {
          kind: 'quorum',
          dir,
          tickTime,
          myId: i + 1,
          serverLines,
          ...(opts.minSessionTimeout === undefined ? {} : { minSessionTimeout: opts.minSessionTimeout }),
          ...(opts.maxSessionTimeout === undefined ? {} : { maxSessionTimeout: opts.maxSessionTimeout }),
        },
        p.client,
      );
    });
    const unregister = registerCleanup(`stop ZooKeeper ensemble ${root}`, async () => {
      await Promise.all(servers.map((s) => s.kill()));
    });
    try {
      // Members wait for a quorum before serving, so start them all at once.
      await Promise.all(servers.map((s) => s.start()));
    } catch (error) {
      await Promise.all(servers.map((s) => s.kill()));
      unregister();
      const portInUse = error instanceof ZkStartError && error.portInUse;
      if (portInUse && attempt < 3) continue;
      throw error;
    }
    return {
      servers,
      connectString: servers.map((s) => s.connectString).join(','),
      async stop() {
        await Promise.all(servers.map((s) => s.stop()));
      },
    };
  }
}

let chrootCounter = 0;

/**
 * Creates a unique, empty chroot node `/sched-test/<prefix>-<pid>-<n>-<random>` on the server
 * and returns a connect string ending with it (`127.0.0.1:port/sched-test/…`), so test files
 * that share one ZooKeeper cannot see each other's nodes.
 */
export async function zkChroot(server: { connectString: string }, prefix = 't'): Promise<string> {
  if (!/^[A-Za-z0-9_.-]+$/.test(prefix)) {
    throw new HarnessError(
      'TESTKIT_INVALID_ARGUMENT',
      `zkChroot prefix must match [A-Za-z0-9_.-]+, got '${prefix}'`,
    );
  }
  chrootCounter += 1;
  const random = Math.random().toString(36).slice(2, 8);
  const path = `/sched-test/${prefix}-${process.pid}-${chrootCounter}-${random}`;
  const client = zookeeper.createClient(server.connectString, { sessionTimeout: 10_000, retries: 3 });
  try {
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(
        () =>
          reject(
            new HarnessError(
              'TESTKIT_TIMEOUT',
              `zkChroot: cannot connect to ${server.connectString} within ${timing.forWaiting()} ms`,
            ),
          ),
        timing.forWaiting(),
      );
      client.once('connected', () => {
        clearTimeout(timer);
        resolve();
      });
      client.connect();
    });
    await new Promise<void>((resolve, reject) => {
      client.mkdirp(path, (error) => (error ? reject(error) : resolve()));
    });
  } finally {
    client.close();
  }
  return `${server.connectString}${path}`;
}
