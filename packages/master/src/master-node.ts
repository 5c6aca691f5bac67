import {
  boundIdentity,
  type Clock,
  HostLoadSampler,
  type Logger,
  redactUrl,
  requireZkCredentials,
  SCHED_VERSION,
  type SchedConfig,
  SchedError,
  systemClock,
  zkInsecureWarning,
} from '@sched/core';
import {
  type ClusterMembership,
  clusterIdPath,
  connectRegistry,
  type FailoverRecord,
  joinCluster,
  LeaderElection,
  type LeadershipTerm,
  type MasterHeartbeat,
  MembersView,
  type NodeState,
  type RegistryPaths,
  type WorkerHeartbeat,
  type ZkSession,
} from '@sched/registry';
import { createPool, dbTimeoutsOf, migrate } from '@sched/store';
import type pg from 'pg';
import { masterRoutes } from './api/api-routes.js';
import { DbHealth } from './db-health.js';
import { HttpWorkerClient } from './dispatch/worker-client.js';
import { FailoverCoordinator } from './failover/failover-coordinator.js';
import { reassignRunsOf } from './failover/failover-queries.js';
import { claimLeaderEpoch } from './failover/leader-epoch.js';
import { MasterHttpServer } from './http/master-http-server.js';
import { MasterMetrics } from './metrics/master-metrics.js';
import { httpAttemptSnapshots } from './reports/attempt-snapshot-client.js';
import { ReportApplier } from './reports/report-applier.js';
import { RunRetention } from './retention/run-retention.js';
import { WorkerRouter } from './routing/worker-router.js';
import type { WorkerView } from './routing/worker-view.js';
import { AttemptReconciler, WorkerHeartbeats } from './runs/attempt-reconciler.js';
import { RunDriver } from './runs/run-driver.js';
import { notifyOwners, RunWakeListener } from './runs/run-wake-channel.js';
import { CommandProcessor } from './scheduler/command-processor.js';
import { ScheduleFirer } from './scheduler/schedule-firer.js';

/**
 * A master daemon (docs/design.md#what-sched-is, #zombies): fires the schedules of its slot,
 * claims commands, owns and drives runs, applies workers' reports, and runs for leadership.
 * Every side effect is gated on the registry lease; when the session is LOST the master fences
 * itself at once (stops firing and driving) and resumes only once registered in a new session —
 * unless it finds it was failed over (`joinCluster`), then it ends for good.
 *
 * | state      | event                               | next                                   |
 * |------------|-------------------------------------|----------------------------------------|
 * | starting   | HTTP bound, migrated, registered    | running                                |
 * | running    | session SUSPENDED                   | running (lease checks stop new work)   |
 * | running    | session LOST                        | fenced (firer + driver stopped)        |
 * | fenced     | new session, no failover record, registered again | running (firing and driving again) |
 * | running/fenced | own failover record found (before re-registering, or appearing later) | terminated (fenced for good; `ended` resolves 3) |
 * | running    | PostgreSQL unreachable for `db.stepOutAfter` while another master reaches it | terminated (fenced, session closed so the others take over; `ended` resolves 4) |
 * | any but stopping/stopped | stop()                | stopping (DRAINING heartbeat; runs handed to the other masters unless fenced or terminated) |
 * | stopping   | deregistered, connections closed    | stopped                                |
 *
 * `state` is this lifecycle state; the heartbeat's `state` field (NORMAL / DRAINING,
 * docs/design.md#znodes) is derived from it by `heartbeatState()`.
 */
export type MasterNodeState = 'starting' | 'running' | 'fenced' | 'terminated' | 'stopping' | 'stopped';

export interface MasterNodeOptions {
  config: SchedConfig;
  logger: Logger;
  clock?: Clock;
  /** Test hook (SCHED_TEST_HOOKS=crash-before-failover-record): see FailoverCoordinator. */
  crashBeforeFailoverRecord?: boolean;
}

export class MasterNode {
  readonly startTime: number;
  readonly pid = process.pid;
  key = '';
  /** Registered `host:port` (the advertised port): what the cluster dials. */
  address = '';
  /** `host:port` the HTTP endpoint is bound to (differs from `address` with `node.advertisePort`). */
  listenAddress = '';
  private readonly clock: Clock;
  private readonly log: Logger;
  private readonly load = new HostLoadSampler();
  private http!: MasterHttpServer;
  pool!: pg.Pool;
  session!: ZkSession;
  paths!: RegistryPaths;
  private membership!: ClusterMembership;
  private dbHealth: DbHealth | undefined;
  mastersView!: MembersView;
  workersView!: MembersView;
  election!: LeaderElection;
  private router!: WorkerRouter;
  private client!: HttpWorkerClient;
  driver!: RunDriver;
  private wakeListener!: RunWakeListener;
  private applier: ReportApplier | undefined;
  /** Asks live workers about owned attempts no report was heard of for long (docs/design.md#reconciliation). */
  private reconciler: AttemptReconciler | undefined;
  firer!: ScheduleFirer;
  commands!: CommandProcessor;
  private nodeState: MasterNodeState = 'starting';
  private resolveEnded!: (code: number) => void;
  /** Resolves with a non-zero exit code when this incarnation must end (it was failed over). */
  readonly ended: Promise<number> = new Promise((resolve) => {
    this.resolveEnded = resolve;
  });

  /** Prometheus metrics (`GET /metrics`); the failover coordinator calls `metrics.recordFailover(role)`. */
  readonly metrics: MasterMetrics;

  private constructor(private readonly opts: MasterNodeOptions) {
    this.clock = opts.clock ?? systemClock;
    this.startTime = this.clock.now();
    this.log = opts.logger;
    this.metrics = new MasterMetrics(this, { logger: this.log });
  }

  static async start(opts: MasterNodeOptions): Promise<MasterNode> {
    const node = new MasterNode(opts);
    try {
      await node.boot();
    } catch (err) {
      await node.stop().catch(() => {});
      throw err;
    }
    return node;
  }

  /** Lifecycle state (the table above); not the heartbeat's NORMAL / DRAINING. */
  get state(): MasterNodeState {
    return this.nodeState;
  }

  /** Whether this master may work: not fenced, terminated or stopping. */
  private get active(): boolean {
    return this.nodeState === 'starting' || this.nodeState === 'running';
  }

  /** Whether side effects may happen now: the lease holds and this master is not fenced. */
  leaseValid(): boolean {
    if (!this.active) return false;
    try {
      this.session.checkLease();
      return true;
    } catch {
      return false;
    }
  }

  get isLeader(): boolean {
    return this.election?.isLeader() ?? false;
  }

  private async boot(): Promise<void> {
    const { config } = this.opts;
    // ZooKeeper credentials, or an explicit --insecure-zk (docs/security.md#zookeeper).
    if (requireZkCredentials(config) === 'insecure')
      this.log.warn({ zkInsecure: true }, zkInsecureWarning('sched-master'));
    if (!config.db.url) {
      throw new SchedError('CONFIG_INVALID', 'db.url: a master needs PostgreSQL; set SCHED_DB_URL or db.url');
    }
    const secret = config.cluster.secret;
    if (!secret) {
      throw new SchedError(
        'CONFIG_INVALID',
        'cluster.secret: masters and workers need a shared secret; set SCHED_CLUSTER_SECRET or cluster.secret',
      );
    }

    // 1. The database: migrate (under an advisory lock; concurrent masters are safe), then a pool.
    try {
      await migrate(config.db.url);
    } catch (err) {
      throw new SchedError(
        'DB_UNREACHABLE',
        `cannot prepare PostgreSQL at ${redactUrl(config.db.url)}: ${(err as Error).message}; ` +
          'check db.url (SCHED_DB_URL, --db-url) and that PostgreSQL is running',
        { cause: err },
      );
    }
    this.pool = createPool(config.db.url, {
      max: config.db.poolSize,
      applicationName: 'sched-master',
      timeouts: dbTimeoutsOf(config.db),
    });

    // 2. The HTTP endpoint decides the advertised port (0 = pick a free one) and so the identity.
    this.http = new MasterHttpServer({
      secret,
      logger: this.log.child({ component: 'http' }),
      routes: masterRoutes({
        api: { node: this, secret, peerMap: config.node.peerMap, logger: this.log, clock: this.clock },
        reports: {
          apply: (reports) => {
            if (!this.applier)
              throw new SchedError('STARTING', 'the master is starting', { retriable: true });
            return this.applier.apply(reports);
          },
        },
        metrics: this.metrics.route(),
      }),
    });
    const bound = await this.http.listen(config.node.port, config.node.host);
    ({
      address: this.address,
      listenAddress: this.listenAddress,
      key: this.key,
    } = boundIdentity(config.node, bound.port, this.startTime));

    // 3. The registry.
    // Connected, the granted session timeout told, the tree laid out with its ACLs checked.
    ({ session: this.session, paths: this.paths } = await connectRegistry(config, {
      clock: this.clock,
      logger: this.log,
      who: 'sched-master',
    }));
    this.workersView = new MembersView(this.session, this.paths, 'worker', { logger: this.log });
    this.mastersView = new MembersView(this.session, this.paths, 'master', { logger: this.log });
    await Promise.all([this.workersView.start(), this.mastersView.start()]);

    // 4. Run driving, report applying, firing, commands.
    this.router = new WorkerRouter({ clock: this.clock });
    this.client = this.metrics.instrumentClient(
      new HttpWorkerClient({ secret, peerMap: config.node.peerMap }),
    );
    this.driver = new RunDriver({
      db: this.pool,
      nodeKey: this.key,
      router: this.router,
      workers: () => this.workerViews(),
      client: this.client,
      leaseValid: () => this.leaseValid(),
      wakeElsewhere: (ids) => void notifyOwners(this.pool, new Map([['*', ids]])).catch(() => {}),
      onRunEnded: (_runId, state) => this.metrics.recordRunEnded(state),
      clock: this.clock,
      logger: this.log.child({ component: 'run-driver' }),
    });
    this.applier = new ReportApplier({
      db: this.pool,
      nodeKey: this.key,
      wakeLocal: (ids) => this.driver.wake(ids),
      onFirstStart: (ms) => this.metrics.observeFireToStart(ms),
      logger: this.log,
    });
    const applier = this.applier;
    const heartbeats = new WorkerHeartbeats(this.workersView, this.clock);
    this.reconciler = new AttemptReconciler({
      db: this.pool,
      nodeKey: this.key,
      workers: () => heartbeats.list(),
      snapshot: httpAttemptSnapshots({ secret, peerMap: config.node.peerMap }),
      revoke: (address, workerKey, attempts) => this.client.revoke(address, workerKey, attempts),
      apply: (reports) => applier.apply(reports),
      leaseValid: () => this.leaseValid(),
      heartbeatFreshMs: 3 * config.heartbeat.intervalMs,
      clock: this.clock,
      logger: this.log.child({ component: 'attempt-reconciler' }),
    });
    this.wakeListener = new RunWakeListener({
      connectionString: config.db.url,
      nodeKey: this.key,
      onWake: (ids) => this.driver.wake(ids),
      onCommand: () => this.commands?.poke(),
      logger: this.log,
    });
    this.firer = new ScheduleFirer({
      pool: this.pool,
      nodeKey: this.key,
      liveMasters: () => this.mastersView.list().map((m) => m.key),
      leaseValid: () => this.leaseValid(),
      clock: this.clock,
      logger: this.log,
      // The first tasks of a pre-staged fire are persisted in its transaction and sent at its commit.
      prepareRuns: (client, runs) => this.driver.prepareFired(client, runs),
      onRunsCreated: (runs) => {
        this.metrics.observeFiredRuns(runs);
        this.driver.wake(runs.filter((r) => !r.queued && !r.prepared).map((r) => r.runId));
      },
    });
    this.commands = new CommandProcessor({
      pool: this.pool,
      nodeKey: this.key,
      leaseValid: () => this.leaseValid(),
      clock: this.clock,
      logger: this.log,
      prepareRuns: (client, runs) => this.driver.prepareFired(client, runs),
      onCommandDone: (r) =>
        this.driver.wake(r.prepared ? r.runIds.filter((id) => !r.prepared?.has(id)) : r.runIds),
    });

    // 5. Join (the firer needs this master in the live list to own a slot), then start. Every
    // re-registration first looks for our failover record, and the record is watched for.
    this.membership = await joinCluster(this.session, this.paths, {
      role: 'master',
      nodeKey: this.key,
      heartbeat: () => ({
        address: this.address,
        startTime: this.startTime,
        pid: this.pid,
        version: SCHED_VERSION,
        ...this.load.sample(),
        state: this.heartbeatState(),
        reportedAt: new Date(this.clock.now()).toISOString(),
        db: this.dbHealth?.up === false ? 'down' : 'up',
      }),
      intervalMs: config.heartbeat.intervalMs,
      onRegistered: () => {
        if (this.nodeState === 'starting') this.nodeState = 'running';
        else this.unfence();
      },
      onFailedOver: (record) => this.terminate(record),
      logger: this.log,
      clock: this.clock,
    });
    this.mastersView.on('added', () => this.firer.membershipChanged());
    this.mastersView.on('removed', () => this.firer.membershipChanged());
    await this.mastersView.sync();

    this.session.on('lost', (info) =>
      this.fence(`ZooKeeper session ${info.sessionId} lost (${info.reason})`),
    );

    await this.wakeListener.start();
    await this.driver.start();
    this.reconciler.start();
    this.firer.start();
    this.commands.start();

    this.election = new LeaderElection(this.session, this.paths, {
      nodeKey: this.key,
      clock: this.clock,
      logger: this.log,
      onLeadership: (term) => this.lead(term),
    });
    this.election.start();

    // 6. Degraded operation: PostgreSQL unreachable (docs/operations.md#degraded-operation).
    this.dbHealth = new DbHealth({
      pool: this.pool,
      stepOutAfterMs: config.db.stepOutAfterMs,
      anotherMasterReachesDb: () =>
        this.mastersView
          .list()
          .some((m) => m.key !== this.key && (m.heartbeat as MasterHeartbeat).db === 'up'),
      onStepOut: () => void this.stepOut(),
      onChange: () => void this.membership?.registration.refresh().catch(() => {}),
      logger: this.log.child({ component: 'db-health' }),
      clock: this.clock,
    });
    this.dbHealth.start();
  }

  /**
   * Cut from PostgreSQL while another master is not: fence, end the ZooKeeper session (so the
   * leader fails this master over and the others take its schedules and runs), and end with
   * code 4 for the supervisor to start a fresh incarnation (which waits for PostgreSQL).
   */
  private async stepOut(): Promise<void> {
    if (!this.active) return;
    this.fence('PostgreSQL unreachable while another master reaches it');
    this.nodeState = 'terminated';
    this.dbHealth?.stop();
    // Leadership first (another master leads at once), then the session: the member znode goes,
    // and the leader fails this incarnation over after the failover delay.
    await this.election?.close().catch(() => {});
    await this.session?.close().catch(() => {});
    this.resolveEnded(4);
  }

  /**
   * Leader duties for one term: record the fencing token in PostgreSQL (every leader-only write
   * is conditional on it; a ZooKeeper whose data was reset takes the epoch over after T + D:
   * `claimLeaderEpoch`), then run failover and reconciliation, and delete runs older than
   * `db.retention` (`RunRetention`), until the term ends.
   */
  private async lead(term: LeadershipTerm): Promise<void> {
    const { config } = this.opts;
    const claimed = await claimLeaderEpoch({
      pool: this.pool,
      term,
      nodeKey: this.key,
      // T (the longer of the requested and the granted session timeout) + D.
      takeoverWaitMs:
        Math.max(config.zk.sessionTimeoutMs, this.session.sessionTimeoutMs) + config.failover.delayMs,
      clusterIdPath: clusterIdPath(this.paths),
      logger: this.log,
    });
    if (!claimed) return;
    const epoch = claimed.czxid;
    this.log.info({ epoch, clusterId: claimed.clusterId }, 'leadership term started');
    const coordinator = new FailoverCoordinator({
      pool: this.pool,
      session: this.session,
      paths: this.paths,
      records: this.membership.records,
      masters: this.mastersView,
      workers: this.workersView,
      nodeKey: this.key,
      delayMs: config.failover.delayMs,
      retentionMs: config.failover.retentionMs,
      logger: this.log,
      onFailover: (role) => this.metrics.recordFailover(role),
      ...(this.opts.crashBeforeFailoverRecord ? { crashBeforeRecord: true } : {}),
    });
    const retention = new RunRetention({
      pool: this.pool,
      retentionMs: config.db.retentionMs,
      logger: this.log,
    });
    await Promise.all([coordinator.run(term), retention.run(term)]);
    this.log.info({ epoch }, 'leadership term ended');
  }

  /** This incarnation was failed over (a zombie): fence for good and tell the CLI to exit non-zero. */
  private terminate(record: FailoverRecord): void {
    if (this.nodeState === 'stopping' || this.nodeState === 'stopped') return;
    this.log.error(
      { failedOverAt: record.failedOverAt, by: record.by, runs: record.runs },
      `this master (${this.key}) was failed over by ${record.by} at ${record.failedOverAt}; exiting so a fresh incarnation can start`,
    );
    this.fence('failed over');
    this.nodeState = 'terminated';
    this.resolveEnded(3);
  }

  /** The heartbeat's `state` field (docs/design.md#znodes): DRAINING from stop() on. */
  private heartbeatState(): NodeState {
    return this.nodeState === 'stopping' || this.nodeState === 'stopped' ? 'DRAINING' : 'NORMAL';
  }

  /** Live workers as the router sees them. */
  workerViews(): WorkerView[] {
    return this.workersView.list().map((m) => {
      const hb = m.heartbeat as WorkerHeartbeat;
      return {
        key: m.key,
        address: m.address,
        startTime: m.startTime,
        czxid: m.czxid,
        groups: hb.groups ?? [],
        weight: hb.weight ?? 1,
        capacity: hb.capacity ?? 0,
        running: hb.running ?? 0,
        state: hb.state,
        cpu: hb.cpu,
        memory: hb.memory,
        load: hb.load,
      };
    });
  }

  private fence(reason: string): void {
    if (!this.active) return;
    this.nodeState = 'fenced';
    this.log.warn({ reason }, 'self-fencing: stopped firing and driving runs');
    void this.firer.stop();
    void this.commands.stop();
    void this.driver.stop();
  }

  /** Registered again in a new session (no failover record): back to work. */
  private unfence(): void {
    if (this.nodeState !== 'fenced') return;
    this.nodeState = 'running';
    this.log.info('new ZooKeeper session: firing and driving runs again');
    this.firer.start();
    this.commands.start();
    void this.driver.start();
  }

  /** A graceful stop hands this master's active runs to the other live masters (nothing to fail over then). */
  private async handBackRuns(): Promise<void> {
    if (!this.pool || !this.mastersView) return;
    const others = this.mastersView
      .list()
      .map((m) => m.key)
      .filter((k) => k !== this.key)
      .sort();
    if (others.length === 0) return;
    const moved = await reassignRunsOf(this.pool, this.key, others);
    const byOwner = new Map<string, number[]>();
    for (const m of moved) byOwner.set(m.owner, [...(byOwner.get(m.owner) ?? []), m.runId]);
    await notifyOwners(this.pool, byOwner);
    if (moved.length > 0) this.log.info({ runs: moved.length }, 'handed runs back to the other masters');
  }

  /** Stops everything: deregisters (nothing is failed over for a graceful stop), closes connections. */
  async stop(): Promise<void> {
    if (this.nodeState === 'stopping' || this.nodeState === 'stopped') return;
    // A fenced or failed-over master's runs are not its to hand over: the failover moves them.
    const handBack = this.active;
    this.nodeState = 'stopping';
    const quietly = async (what: string, fn: () => Promise<unknown> | unknown) => {
      try {
        await fn();
      } catch (err) {
        this.log.warn({ err }, `stopping ${what} failed`);
      }
    };
    // Publish DRAINING first: a leader that sees this node go then knows it was a graceful stop.
    await quietly('heartbeat', () => this.membership?.registration.refresh());
    this.dbHealth?.stop();
    await quietly('election', () => this.election?.close());
    await quietly('firer', () => this.firer?.stop());
    await quietly('commands', () => this.commands?.stop());
    await quietly('driver', () => this.driver?.stop());
    await quietly('attempt reconciler', () => this.reconciler?.stop());
    if (handBack) await quietly('hand-back', () => this.handBackRuns());
    await quietly('wake listener', () => this.wakeListener?.stop());
    await quietly('registration', () => this.membership?.stop());
    await quietly('views', () => {
      this.mastersView?.stop();
      this.workersView?.stop();
    });
    await quietly('session', () => this.session?.close());
    await quietly('http', () => this.http?.close());
    this.client?.close();
    await quietly('pool', () => this.pool?.end());
    this.nodeState = 'stopped';
  }
}
