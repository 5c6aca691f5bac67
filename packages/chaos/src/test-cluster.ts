// A real sched cluster for end-to-end tests: masters and workers as child processes (the built
// `sched-master` / `sched-worker` binaries), each in its own process group, against the shared
// ZooKeeper (own chroot) and PostgreSQL (own database) of the test run, or private servers.
// Optional fault proxies sit between each daemon and ZooKeeper / the other daemons.
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  applyDefinitions,
  compileDefinitions,
  createPool,
  enqueueCommand,
  getWorkflowByName,
  migrate,
} from '@sched/store';
import {
  type ChildHandle,
  createDatabase,
  FaultProxy,
  type PgServer,
  registerCleanup,
  sharedZooKeeper,
  spawnProcess,
  zkChroot,
} from '@sched/testkit';
import type pg from 'pg';

const root = fileURLToPath(new URL('../../..', import.meta.url));
export const binaries = {
  master: join(root, 'packages/cli/dist/bin/sched-master.js'),
  worker: join(root, 'packages/cli/dist/bin/sched-worker.js'),
  ctl: join(root, 'packages/cli/dist/bin/sched-ctl.js'),
};

export interface DaemonHandle {
  role: 'master' | 'worker';
  name: string;
  child: ChildHandle;
  /** Incarnation key `host:port_startTime`, from the start-up line. */
  key: string;
  address: string;
  /** Proxy between this daemon and ZooKeeper, when the cluster was made with `zkProxies`. */
  zkProxy: FaultProxy | undefined;
  /**
   * Every proxy between this daemon and ZooKeeper: one per server of the connect string (an
   * ensemble gets one per member, so a partition of the daemon is the same mode on all of them).
   * Empty without `zkProxies`; `zkProxy` is the first.
   */
  zkProxyList: FaultProxy[];
}

export interface ClusterOptions {
  /** Extra environment for every daemon (SCHED_* settings). */
  env?: Record<string, string>;
  /** Put a fault proxy between each daemon and ZooKeeper. @defaultValue false */
  zkProxies?: boolean;
  /** ZooKeeper connect string (without chroot) to use instead of the shared server. */
  zkConnect?: string;
  /** PostgreSQL server for the cluster's fresh database (default: the shared one). */
  pgServer?: Pick<PgServer, 'url'>;
  /** Also append each daemon's output to `<logDir>/<name>.log` (kept for debugging). */
  logDir?: string;
  /** Extra `node` options for every daemon (e.g. `--cpu-prof` for the throughput profile). */
  nodeArgs?: string[];
}

export class TestCluster {
  readonly masters: DaemonHandle[] = [];
  readonly workers: DaemonHandle[] = [];
  readonly secret = 'test-cluster-secret';
  private counter = 0;

  private constructor(
    readonly zkConnect: string,
    /** Connect string with this cluster's chroot. */
    readonly zkChrooted: string,
    readonly chroot: string,
    readonly dbUrl: string,
    readonly pool: pg.Pool,
    readonly dataRoot: string,
    private readonly opts: ClusterOptions,
  ) {}

  static async create(opts: ClusterOptions = {}): Promise<TestCluster> {
    const zkConnect = opts.zkConnect ?? (await sharedZooKeeper()).connectString;
    const chrooted = await zkChroot({ connectString: zkConnect }, 'e2e');
    const chroot = chrooted.slice(chrooted.indexOf('/'));
    const db = await createDatabase(opts.pgServer);
    await migrate(db.url);
    const pool = createPool(db.url, { max: 4, applicationName: 'sched-test' });
    const dataRoot = mkdtempSync(join(tmpdir(), 'sched-e2e-'));
    const cluster = new TestCluster(zkConnect, chrooted, chroot, db.url, pool, dataRoot, opts);
    registerCleanup('e2e cluster', () => cluster.stop());
    return cluster;
  }

  /** Environment every daemon of this cluster gets (tests may read it to run sched-ctl). */
  baseEnv(): Record<string, string> {
    return {
      SCHED_DB_URL: this.dbUrl,
      SCHED_CLUSTER_SECRET: this.secret,
      SCHED_ZK_SESSION_TIMEOUT: '4s',
      SCHED_HEARTBEAT_INTERVAL: '1s',
      SCHED_FAILOVER_DELAY: '3s',
      SCHED_LOG_LEVEL: 'info',
      SCHED_HOST: '127.0.0.1',
      SCHED_PORT: '0',
      ...this.opts.env,
    };
  }

  async startMaster(env: Record<string, string> = {}): Promise<DaemonHandle> {
    return this.start('master', env);
  }

  async startWorker(env: Record<string, string> = {}): Promise<DaemonHandle> {
    return this.start('worker', env);
  }

  private async start(role: 'master' | 'worker', env: Record<string, string>): Promise<DaemonHandle> {
    this.counter += 1;
    const name = `${role}-${this.counter}`;
    const zkProxyList: FaultProxy[] = [];
    let zk = this.zkChrooted;
    if (this.opts.zkProxies) {
      for (const server of this.zkConnect.split(',')) {
        const [host, port] = server.split(':');
        const proxy = await FaultProxy.start({ host: host ?? '127.0.0.1', port: Number(port) });
        registerCleanup('zk proxy', async () => proxy.close());
        zkProxyList.push(proxy);
      }
      zk = `${zkProxyList.map((p) => p.address).join(',')}${this.chroot}`;
    }
    const child = spawnProcess(
      process.execPath,
      [...(this.opts.nodeArgs ?? []), role === 'master' ? binaries.master : binaries.worker, 'start'],
      {
        name,
        ...(this.opts.logDir ? { logFile: join(this.opts.logDir, `${name}.log`) } : {}),
        env: {
          ...this.baseEnv(),
          SCHED_ZK: zk,
          SCHED_DATA_DIR: join(this.dataRoot, name),
          ...env,
        },
      },
    );
    let line: string;
    try {
      line = await child.waitForOutput(new RegExp(`^sched-${role} (\\S+) listening on (\\S+),`, 'm'), 30_000);
    } catch (error) {
      // A daemon that did not come up is not left behind half-started.
      await child.kill9();
      await Promise.all(zkProxyList.map((p) => p.close()));
      throw error;
    }
    const m = new RegExp(`sched-${role} (\\S+) listening on (\\S+),`).exec(line);
    const handle: DaemonHandle = {
      role,
      name,
      child,
      key: m?.[1] ?? '',
      address: m?.[2] ?? '',
      zkProxy: zkProxyList[0],
      zkProxyList,
    };
    (role === 'master' ? this.masters : this.workers).push(handle);
    return handle;
  }

  /** Validates and applies workflow definitions (as `sched-ctl workflow apply` does). */
  async apply(...raw: unknown[]): Promise<void> {
    const defs = compileDefinitions(raw.map((value) => ({ value })));
    await applyDefinitions(this.pool, defs);
  }

  /** Queues a manual trigger; returns the command id (the run appears once a master claims it). */
  async trigger(workflow: string, params: Record<string, string> = {}): Promise<number> {
    const wf = await getWorkflowByName(this.pool, workflow);
    if (!wf) throw new Error(`no workflow ${workflow}`);
    return enqueueCommand(this.pool, { kind: 'trigger', workflowId: wf.id, params, requestedBy: 'test' });
  }

  async query<T extends pg.QueryResultRow>(sql: string, params: unknown[] = []): Promise<T[]> {
    return (await this.pool.query<T>(sql, params)).rows;
  }

  /** Everything the daemons printed, for failure messages. */
  output(): string {
    return [...this.masters, ...this.workers]
      .map((d) => `==== ${d.name}\n${d.child.output().slice(-6000)}`)
      .join('\n');
  }

  async stop(): Promise<void> {
    await Promise.all(
      [...this.workers, ...this.masters].map((d) => (d.child.running ? d.child.stop(5_000) : null)),
    );
    await this.pool.end().catch(() => {});
  }
}
