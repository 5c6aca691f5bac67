// A real sched cluster for end-to-end tests: masters and workers as child processes (the built
// `sched-master` / `sched-worker` binaries), each in its own process group, against the shared
// ZooKeeper (own chroot) and PostgreSQL (own database) of the test run, or private servers.
// Optional fault proxies sit between each daemon and ZooKeeper (`zkProxies`) and on every link
// between masters and workers (`peerProxies`), so one daemon can be cut off from everything.
//
// Peer proxies: each daemon *slot* (a name that successive incarnations share, e.g. `worker-2`)
// has an inbound proxy in front of its HTTP endpoint; the daemon advertises the proxy's port
// (SCHED_ADVERTISE_PORT), so every peer reaches it through it. Each daemon also gets its own
// outbound proxy to the inbound proxy of every slot of the other role that exists when it
// starts, and dials those (SCHED_PEER_MAP). Partitioning a daemon (`linkProxies`) = its
// ZooKeeper proxies + its inbound proxy + its outbound proxies: masters cannot dispatch to it,
// it cannot report to them, and ZooKeeper hears nothing from it. Reserve every slot first
// (`reserveSlot`) so that daemons started earlier also have outbound proxies to later slots.
import { randomBytes } from 'node:crypto';
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
  type FaultMode,
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
  /** Slot the daemon fills: its inbound proxy is shared with the slot's other incarnations. */
  slot: string;
  /** Incarnation key `host:port_startTime`, from the start-up line. */
  key: string;
  /** Registered (advertised) `host:port`: the inbound proxy's with `peerProxies`. */
  address: string;
  /** `host:port` the daemon's HTTP endpoint is bound to. */
  listenAddress: string;
  /** Proxy between this daemon and ZooKeeper, when the cluster was made with `zkProxies`. */
  zkProxy: FaultProxy | undefined;
  /**
   * Every proxy between this daemon and ZooKeeper: one per server of the connect string (an
   * ensemble gets one per member, so a partition of the daemon is the same mode on all of them).
   * Empty without `zkProxies`; `zkProxy` is the first.
   */
  zkProxyList: FaultProxy[];
  /** With `peerProxies`: the proxy every peer reaches this daemon through (its slot's). */
  inboundProxy: FaultProxy | undefined;
  /** With `peerProxies`: this daemon's own proxies to the peer slots, by slot name. */
  outboundProxies: Map<string, FaultProxy>;
  /** Every proxy on this daemon's links (ZooKeeper, inbound, outbound): set them all to partition it. */
  linkProxies: FaultProxy[];
  /**
   * With `pgProxies`, masters only (workers never touch PostgreSQL): the proxy between this
   * daemon and PostgreSQL. Not in `linkProxies`: its database link fails on its own.
   */
  pgProxy: FaultProxy | undefined;
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
  /** Put fault proxies on the master↔worker links too (see the top of this file). @defaultValue false */
  peerProxies?: boolean;
  /** Put a fault proxy between each master and PostgreSQL (`DaemonHandle.pgProxy`). @defaultValue false */
  pgProxies?: boolean;
  /** Extra `node` options for every daemon (e.g. `--cpu-prof` for the throughput profile). */
  nodeArgs?: string[];
  /**
   * Run the daemons with the product's default timings (session timeout, heartbeat, failover
   * delay, log level) instead of the short test timings: benchmarks measure what users get.
   * @defaultValue false
   */
  productDefaults?: boolean;
}

export class TestCluster {
  readonly masters: DaemonHandle[] = [];
  readonly workers: DaemonHandle[] = [];
  /** The cluster secret (SCHED_CLUSTER_SECRET): random, and at least the 32 bytes daemons require. */
  readonly secret = randomBytes(32).toString('base64url');
  /**
   * ZooKeeper digest credentials every daemon gets (SCHED_ZK_AUTH), as in production: the
   * cluster's znodes are protected by them. Tests that read or write its znodes pass them
   * (`ZkSession.connect({ …, auth: cluster.zkAuth })`), and so does sched-ctl.
   */
  readonly zkAuth = `sched:${randomBytes(24).toString('base64url')}`;
  private counter = 0;
  /** Inbound proxies of the peer slots (with `peerProxies`), by slot name. */
  private readonly slots = new Map<string, { role: 'master' | 'worker'; inbound: FaultProxy }>();

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
    const testTimings: Record<string, string> = this.opts.productDefaults
      ? {}
      : {
          SCHED_ZK_SESSION_TIMEOUT: '4s',
          SCHED_HEARTBEAT_INTERVAL: '1s',
          SCHED_FAILOVER_DELAY: '3s',
          SCHED_LOG_LEVEL: 'info',
        };
    return {
      SCHED_DB_URL: this.dbUrl,
      SCHED_CLUSTER_SECRET: this.secret,
      SCHED_ZK_AUTH: this.zkAuth,
      ...testTimings,
      SCHED_HOST: '127.0.0.1',
      SCHED_PORT: '0',
      ...this.opts.env,
    };
  }

  /**
   * Starts a master. `slot` names the place it fills (default: a fresh one per daemon); with
   * `peerProxies`, a restarted daemon given its predecessor's slot keeps the same advertised port.
   */
  async startMaster(env: Record<string, string> = {}, slot?: string): Promise<DaemonHandle> {
    return this.start('master', env, slot);
  }

  async startWorker(env: Record<string, string> = {}, slot?: string): Promise<DaemonHandle> {
    return this.start('worker', env, slot);
  }

  /**
   * With `peerProxies`: creates the slot's inbound proxy now, so daemons of the other role started
   * from now on get an outbound proxy to it (its connections wait until a daemon fills the slot).
   */
  async reserveSlot(role: 'master' | 'worker', slot: string): Promise<FaultProxy | undefined> {
    if (!this.opts.peerProxies) return undefined;
    const known = this.slots.get(slot);
    if (known) {
      if (known.role !== role) throw new Error(`slot ${slot} is a ${known.role} slot, not a ${role} slot`);
      return known.inbound;
    }
    const inbound = await FaultProxy.start();
    this.slots.set(slot, { role, inbound });
    return inbound;
  }

  private async start(
    role: 'master' | 'worker',
    env: Record<string, string>,
    slotName?: string,
  ): Promise<DaemonHandle> {
    this.counter += 1;
    const name = `${role}-${this.counter}`;
    const slot = slotName ?? name;
    const zkProxyList: FaultProxy[] = [];
    const outboundProxies = new Map<string, FaultProxy>();
    let pgProxy: FaultProxy | undefined;
    const closeOwnProxies = () =>
      Promise.all(
        [...zkProxyList, ...outboundProxies.values(), ...(pgProxy ? [pgProxy] : [])].map((p) => p.close()),
      );
    let child: ChildHandle | undefined;
    let inboundProxy: FaultProxy | undefined;
    let line: string;
    try {
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
      inboundProxy = await this.reserveSlot(role, slot);
      const peerEnv: Record<string, string> = {};
      if (this.opts.pgProxies && role === 'master') {
        const db = new URL(this.dbUrl);
        pgProxy = await FaultProxy.start({ host: db.hostname, port: Number(db.port) });
        db.host = pgProxy.address;
        peerEnv.SCHED_DB_URL = db.toString();
      }
      if (inboundProxy) {
        // Connections for the new incarnation wait until it listens (the old one is gone).
        inboundProxy.setTarget(undefined);
        const map: string[] = [];
        for (const [peer, { role: peerRole, inbound }] of this.slots) {
          if (peerRole === role) continue;
          const out = await FaultProxy.start({ host: inbound.host, port: inbound.port });
          outboundProxies.set(peer, out);
          map.push(`${inbound.address}=${out.address}`);
        }
        peerEnv.SCHED_ADVERTISE_PORT = String(inboundProxy.port);
        if (map.length > 0) peerEnv.SCHED_PEER_MAP = map.join(',');
      }
      child = spawnProcess(
        process.execPath,
        [...(this.opts.nodeArgs ?? []), role === 'master' ? binaries.master : binaries.worker, 'start'],
        {
          name,
          ...(this.opts.logDir ? { logFile: join(this.opts.logDir, `${name}.log`) } : {}),
          env: {
            ...this.baseEnv(),
            SCHED_ZK: zk,
            SCHED_DATA_DIR: join(this.dataRoot, name),
            ...peerEnv,
            ...env,
          },
        },
      );
      line = await child.waitForOutput(startLine(role), 30_000);
    } catch (error) {
      // A daemon that did not come up is not left behind half-started, nor are the proxies made
      // for it (one may have failed to start halfway through).
      try {
        await child?.kill9();
      } finally {
        await closeOwnProxies();
      }
      throw error;
    }
    const m = startLine(role).exec(line);
    const listenAddress = m?.[2] ?? '';
    const address = m?.[3] ?? listenAddress;
    if (inboundProxy) {
      if (address !== inboundProxy.address)
        throw new Error(`${name} advertised ${address}, not its inbound proxy ${inboundProxy.address}`);
      const port = Number(listenAddress.slice(listenAddress.lastIndexOf(':') + 1));
      inboundProxy.setTarget({ host: '127.0.0.1', port });
    }
    // An exited incarnation's own proxies are of no more use (the slot's inbound one is kept).
    void child.exited.then(closeOwnProxies, closeOwnProxies);
    const handle: DaemonHandle = {
      role,
      name,
      slot,
      child,
      key: m?.[1] ?? '',
      address,
      listenAddress,
      zkProxy: zkProxyList[0],
      zkProxyList,
      inboundProxy,
      outboundProxies,
      linkProxies: [...zkProxyList, ...(inboundProxy ? [inboundProxy] : []), ...outboundProxies.values()],
      pgProxy,
    };
    (role === 'master' ? this.masters : this.workers).push(handle);
    return handle;
  }

  /**
   * Sets every proxy on the daemon's links (`linkProxies`) to `mode`: `blackhole` or `down`
   * partitions it from ZooKeeper and the other daemons, `pass` heals it.
   */
  partition(handle: DaemonHandle, mode: FaultMode): void {
    for (const proxy of handle.linkProxies) proxy.setMode(mode);
  }

  /** Validates and applies workflow definitions (as `sched-ctl workflow apply` does). */
  async apply(...raw: unknown[]): Promise<void> {
    const defs = compileDefinitions(raw.map((value) => ({ value })));
    await applyDefinitions(this.pool, defs);
  }

  /** Queues a manual trigger; returns the command id (the run appears once a master claims it). */
  async trigger(
    workflow: string,
    params: Record<string, string> = {},
    requestedBy = 'test',
  ): Promise<number> {
    const wf = await getWorkflowByName(this.pool, workflow);
    if (!wf) throw new Error(`no workflow ${workflow}`);
    return enqueueCommand(this.pool, { kind: 'trigger', workflowId: wf.id, params, requestedBy });
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
    await Promise.all([...this.slots.values()].map(({ inbound }) => inbound.close()));
  }
}

/** `sched-<role> KEY listening on LISTEN[ (advertised as ADDRESS)], …`, as the start commands print it. */
function startLine(role: 'master' | 'worker'): RegExp {
  return new RegExp(`^sched-${role} (\\S+) listening on (\\S+)(?: \\(advertised as (\\S+)\\))?,`, 'm');
}
