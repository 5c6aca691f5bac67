import { join } from 'node:path';
import {
  boundIdentity,
  type Clock,
  dialAddress,
  HostLoadSampler,
  type Logger,
  requireZkCredentials,
  SCHED_VERSION,
  type SchedConfig,
  SchedError,
  systemClock,
  zkInsecureWarning,
} from '@sched/core';
import {
  type ClusterMembership,
  connectRegistry,
  type FailoverRecord,
  joinCluster,
  MembersView,
  type ZkSession,
} from '@sched/registry';
import { TaskExecutor } from './executor/task-executor.js';
import { TaskSupervisor } from './executor/task-supervisor.js';
import { WorkerHttpServer, type WorkerHttpServerOptions } from './http/worker-http-server.js';
import { LogStore } from './logs/log-store.js';
import { reportExecutorEvents } from './reporting/executor-reports.js';
import { httpReportTransport } from './reporting/http-report-transport.js';
import { ReportSender } from './reporting/report-sender.js';
import { ReportSpool } from './reporting/report-spool.js';
import { registerWorkerMetrics, type WorkerMetrics } from './worker-metrics.js';

/**
 * A worker daemon (docs/design.md#what-sched-is, #runs, #zombies) without its command line: the
 * executor with its task supervisor process, the HTTP endpoint masters dispatch to, the report
 * spool, and registry membership.
 *
 * | state      | event                                      | next                                     |
 * |------------|--------------------------------------------|------------------------------------------|
 * | starting   | endpoint bound, spool replayed, registered | running                                  |
 * | running    | session SUSPENDED                          | suspended (new dispatches refused, 503)  |
 * | suspended  | same session answers again                 | running                                  |
 * | running/suspended | session LOST                        | fenced (every task's group killed; attempts reported failed-over; new dispatches refused, 503) |
 * | fenced     | new session, no failover record, registered | running (a new registration: dispatches addressed to the old one are refused, 409 WRONG_REGISTRATION) |
 * | any        | own failover record found                  | terminated (tasks killed; the CLI exits non-zero) |
 * | running    | drain()                                    | draining (DRAINING heartbeat, refuse new, wait; after the timeout, hand back what runs) → stopped |
 * | draining   | session LOST                               | fenced, still draining (DRAINING heartbeat; tasks killed and reported failed-over) |
 * | fenced while draining | new session, registered         | draining (never accepts tasks again) |
 * | any        | stop()                                     | stopped (tasks still running handed back; deregistered; unacked reports stay spooled) |
 *
 * Reports go to any live master found in the registry, so a master crash loses nothing (the
 * spool keeps them until some master acknowledges).
 */
export interface WorkerNodeOptions {
  config: SchedConfig;
  logger: Logger;
  clock?: Clock;
  /** Finished attempt logs older than this are purged. @defaultValue config `worker.logRetention` */
  logRetentionMs?: number;
  /** How often logs are purged. @defaultValue 3600000 (1 hour) */
  logPurgeIntervalMs?: number;
  /** Unauthenticated GET endpoints on the worker's HTTP server (e.g. `/metrics`); see WorkerHttpServer. */
  publicGet?: WorkerHttpServerOptions['publicGet'];
}

export const DEFAULT_WORKER_NODE_OPTIONS = { logPurgeIntervalMs: 3_600_000 } as const satisfies Required<
  Pick<WorkerNodeOptions, 'logPurgeIntervalMs'>
>;

export type WorkerNodeState =
  | 'starting'
  | 'running'
  | 'suspended'
  | 'fenced'
  | 'draining'
  | 'terminated'
  | 'stopped';

export class WorkerNode {
  readonly startTime: number;
  readonly pid = process.pid;
  key = '';
  /** Registered `host:port` (the advertised port): what the cluster dials. */
  address = '';
  /** `host:port` the HTTP endpoint is bound to (differs from `address` with `node.advertisePort`). */
  listenAddress = '';
  executor!: TaskExecutor;
  logs!: LogStore;
  sender!: ReportSender;
  session!: ZkSession;
  mastersView!: MembersView;
  private http!: WorkerHttpServer;
  private membership: ClusterMembership | undefined;
  supervisor: TaskSupervisor | undefined;
  private readonly clock: Clock;
  private readonly log: Logger;
  private readonly load = new HostLoadSampler();
  /** running/capacity and the session state, read at scrape time. */
  readonly metrics: WorkerMetrics = registerWorkerMetrics(this);
  private purgeTimer: NodeJS.Timeout | undefined;
  private nodeState: WorkerNodeState = 'starting';
  private lastHeartbeatState = 'NORMAL';
  /** Set by drain(): from then on the worker never accepts tasks again, whatever its session does. */
  private drainRequested = false;
  private resolveTerminated!: (why: { reason: string }) => void;
  /** Resolves when this incarnation must end because it was failed over: the CLI exits non-zero. */
  readonly terminated: Promise<{ reason: string }>;

  private constructor(private readonly opts: WorkerNodeOptions) {
    this.clock = opts.clock ?? systemClock;
    this.startTime = this.clock.now();
    this.log = opts.logger;
    this.terminated = new Promise((resolve) => {
      this.resolveTerminated = resolve;
    });
  }

  static async start(opts: WorkerNodeOptions): Promise<WorkerNode> {
    const node = new WorkerNode(opts);
    try {
      await node.boot();
    } catch (err) {
      await node.stop().catch(() => {});
      throw err;
    }
    return node;
  }

  get state(): WorkerNodeState {
    return this.nodeState;
  }

  private async boot(): Promise<void> {
    const { config } = this.opts;
    // ZooKeeper credentials, or an explicit --insecure-zk (docs/security.md#zookeeper).
    if (requireZkCredentials(config) === 'insecure')
      this.log.warn({ zkInsecure: true }, zkInsecureWarning('sched-worker'));
    const secret = config.cluster.secret;
    if (!secret) {
      throw new SchedError(
        'CONFIG_INVALID',
        'cluster.secret: masters and workers need a shared secret; set SCHED_CLUSTER_SECRET or cluster.secret',
      );
    }
    const dataDir = config.node.dataDir;

    // 1. Local parts: the task supervisor, logs, executor, spool (replayed below, once masters are known).
    // The supervisor kills every task group if this daemon dies, or is frozen when its session
    // lease runs out (it is told the lease's deadline; docs/design.md#zombies). Until the session
    // is made it knows only the requested timeout; step 3 gives it the granted one.
    this.supervisor = await TaskSupervisor.start({
      timeoutMs: config.zk.sessionTimeoutMs,
      leaseRemainingMs: () => this.session?.leaseRemainingMs(),
      logger: this.log.child({ component: 'task-supervisor' }),
    });
    this.logs = new LogStore({
      dir: join(dataDir, 'logs'),
      retentionMs: this.opts.logRetentionMs ?? config.worker.logRetentionMs,
      maxBytesPerAttempt: config.worker.logMaxBytes,
      clock: this.clock,
    });
    this.executor = new TaskExecutor({
      capacity: config.worker.capacity,
      httpCapacity: config.worker.httpCapacity,
      httpNetworks: { allow: config.worker.httpAllowNetworks ?? null, deny: config.worker.httpDenyNetworks },
      backlog: config.worker.backlog,
      killGraceMs: config.worker.killGraceMs,
      logs: this.logs,
      workDir: join(dataDir, 'work'),
      groupWatcher: this.supervisor,
      clock: this.clock,
      logger: this.log.child({ component: 'executor' }),
    });

    // 2. The endpoint decides the advertised port (0 = pick one) and so the identity.
    this.http = new WorkerHttpServer({
      executor: this.executor,
      logs: this.logs,
      secret,
      nodeKey: () => this.key || null,
      // The latest registration (kept after a LOST until the next one: dispatches are refused
      // then anyway, the executor drains while fenced).
      registration: () => this.membership?.registration.registration?.czxid.toString() ?? null,
      health: () => ({
        state: this.heartbeatState(),
        node: this.nodeState,
        groups: config.worker.groups,
        reportSpool: this.sender?.spoolHealth ?? null,
      }),
      logger: this.log.child({ component: 'http' }),
      // Prometheus scrapes /metrics without the cluster secret (docs/api.md).
      publicGet: { '/metrics': (req, res) => this.metrics.serve(req, res), ...this.opts.publicGet },
    });
    const bound = await this.http.listen(config.node.port, config.node.host);
    ({
      address: this.address,
      listenAddress: this.listenAddress,
      key: this.key,
    } = boundIdentity(config.node, bound.port, this.startTime));
    // Nothing may run before this worker is registered: a dispatch could only come from a
    // master that guessed the key, but the executor refuses until then anyway.
    this.executor.drain();

    // 3. The registry: session, masters (report targets).
    // Connected (the operator told of a granted session timeout other than asked), the tree laid
    // out with its ACLs checked.
    const { session, paths } = await connectRegistry(config, {
      clock: this.clock,
      logger: this.log,
      who: 'sched-worker',
    });
    this.session = session;
    // The lease already runs on the granted session timeout; the supervisor must too.
    const supervisor = this.supervisor;
    supervisor.setTimeoutMs(this.session.sessionTimeoutMs);
    this.session.on('sessionTimeout', ({ grantedMs }) => supervisor.setTimeoutMs(grantedMs));
    // A new session moves the lease deadline forward, LOST ends it: tell the supervisor at once.
    this.session.on('status', () => supervisor.refresh());
    this.mastersView = new MembersView(this.session, paths, 'master', { logger: this.log });
    await this.mastersView.start();

    // 4. Reports: replay the spool of earlier runs, then report every attempt of this one.
    this.sender = new ReportSender({
      spool: new ReportSpool(join(dataDir, 'spool'), this.log),
      send: httpReportTransport({
        masters: () => this.mastersView.list().map((m) => dialAddress(config.node.peerMap, m.address)),
        secret,
      }),
      logger: this.log.child({ component: 'reports' }),
      // The heartbeat says at once when reports stop being durable (and when they are again).
      onSpoolHealth: () => void this.membership?.registration.refresh().catch(() => {}),
    });
    await this.sender.start();
    reportExecutorEvents(this.executor, this.sender, () => this.key, this.clock, this.log);
    // A heartbeat at once when the worker becomes full or has room again, so routers skip or use it.
    this.executor.on(() => {
      const now = this.heartbeatState();
      if (now !== this.lastHeartbeatState) {
        this.lastHeartbeatState = now;
        void this.membership?.registration.refresh().catch(() => {});
      }
    });

    // 5. Session events: suspend, fence, come back — or exit if failed over.
    this.session.on('status', (status) => {
      if (status.kind === 'SUSPENDED' && this.nodeState === 'running') {
        this.nodeState = 'suspended';
        this.executor.drain();
        this.log.warn({ reason: status.reason }, 'ZooKeeper session suspended: refusing new tasks');
      } else if (status.kind === 'RECONNECTED' && !status.newSession && this.nodeState === 'suspended') {
        this.nodeState = 'running';
        this.executor.resume();
        this.log.info('ZooKeeper session answers again: accepting tasks');
      }
    });
    this.session.on(
      'lost',
      (info) => void this.fence(`ZooKeeper session ${info.sessionId} lost (${info.reason})`),
    );

    // 6. Join. Before each re-registration (a new session) our failover record is looked for, and
    // it is watched for: if the leader is failing us over right now, it appears later.
    this.membership = await joinCluster(this.session, paths, {
      role: 'worker',
      nodeKey: this.key,
      heartbeat: () => ({
        address: this.address,
        startTime: this.startTime,
        pid: this.pid,
        version: SCHED_VERSION,
        ...this.load.sample(),
        state: this.heartbeatState(),
        reportedAt: new Date(this.clock.now()).toISOString(),
        groups: config.worker.groups,
        weight: config.worker.weight,
        capacity: config.worker.capacity,
        running: this.executor.running,
        queued: this.executor.queued,
        backlog: config.worker.backlog,
        // `failing`: reports are held in memory only (the spool cannot be written).
        reportSpool: this.sender?.spoolHealth.state ?? 'ok',
      }),
      intervalMs: config.heartbeat.intervalMs,
      onRegistered: () => {
        if (this.nodeState === 'fenced' || this.nodeState === 'starting' || this.nodeState === 'suspended') {
          // A drain fenced on the way stays a drain: registered again as DRAINING, taking nothing.
          if (this.drainRequested) {
            this.nodeState = 'draining';
            return;
          }
          this.nodeState = 'running';
          this.executor.resume();
        }
      },
      onFailedOver: (record) => void this.terminate(record),
      logger: this.log,
      clock: this.clock,
    });

    const interval = this.opts.logPurgeIntervalMs ?? DEFAULT_WORKER_NODE_OPTIONS.logPurgeIntervalMs;
    this.purgeTimer = setInterval(() => {
      this.logs.purge().catch((err) => this.log.warn({ err }, 'purging old attempt logs failed'));
    }, interval);
    this.purgeTimer.unref();
    this.log.info(
      { key: this.key, groups: config.worker.groups, capacity: config.worker.capacity },
      'worker started',
    );
  }

  private heartbeatState(): 'NORMAL' | 'BUSY' | 'DRAINING' {
    if (
      this.drainRequested ||
      this.nodeState === 'draining' ||
      this.nodeState === 'stopped' ||
      this.nodeState === 'terminated'
    ) {
      return 'DRAINING';
    }
    // BUSY only when it would refuse a shell task: every process slot taken and the backlog full.
    return this.executor?.full('process') ? 'BUSY' : 'NORMAL';
  }

  /** Session LOST: SIGKILL every task group at once; the failover delay counts on it (docs/design.md#failover-delay, decision 0004). */
  private async fence(reason: string): Promise<void> {
    if (this.nodeState === 'stopped' || this.nodeState === 'terminated') return;
    this.nodeState = 'fenced';
    this.log.warn({ reason, running: this.executor.running }, 'self-fencing: killing every running task');
    await this.executor.killAll(`worker lost its ZooKeeper session (${reason})`, { fenced: true });
  }

  private async terminate(record: FailoverRecord): Promise<void> {
    if (this.nodeState === 'terminated' || this.nodeState === 'stopped') return;
    this.nodeState = 'terminated';
    const reason = `this worker (${this.key}) was failed over at ${record.failedOverAt} by ${record.by}`;
    this.log.error({ record }, `${reason}; killing its tasks and exiting`);
    await this.executor.killAll(reason, { fenced: true });
    this.resolveTerminated({ reason });
  }

  /**
   * Graceful shutdown (SIGTERM): advertise DRAINING, refuse new tasks, let running ones finish
   * (up to `timeoutMs`, then hand them back: SIGTERM, grace, SIGKILL, reported `failed-over` so
   * the master re-runs them elsewhere without using a retry), deliver their reports, then stop.
   * A session lost meanwhile fences the worker as usual, but it stays a drain: it never takes
   * tasks again.
   */
  async drain(timeoutMs = 60_000): Promise<void> {
    // A failed-over incarnation is already on its way out; it is not a drain.
    if (this.nodeState === 'stopped' || this.nodeState === 'terminated') return;
    this.drainRequested = true;
    this.nodeState = 'draining';
    this.executor.drain();
    // Attempts still waiting for a slot go back at once: other workers run them sooner.
    this.executor.handBackQueued('worker draining; handed back before it started');
    await this.membership?.registration.refresh().catch(() => {});
    const idle = this.executor.whenIdle();
    const timedOut = await Promise.race([
      idle.then(() => false),
      new Promise<boolean>((r) => setTimeout(() => r(true), timeoutMs).unref()),
    ]);
    if (timedOut) {
      await this.executor.killAll(`worker drain took longer than ${timeoutMs} ms; handed back`, {
        handBack: true,
      });
    }
    await this.sender.drained(Math.min(timeoutMs, 10_000)).catch((err) => {
      this.log.warn(
        { err },
        'reports still unacknowledged at shutdown; they stay in the spool for the next start',
      );
    });
    await this.stop();
  }

  /**
   * Stops everything. Running tasks are killed (SIGTERM, grace, SIGKILL) and handed back
   * (`failed-over`: the master re-runs them elsewhere); unacknowledged reports stay spooled.
   */
  async stop(): Promise<void> {
    if (this.nodeState === 'stopped') return;
    const wasTerminated = this.nodeState === 'terminated';
    this.nodeState = 'stopped';
    const quietly = async (what: string, fn: () => Promise<unknown> | unknown) => {
      try {
        await fn();
      } catch (err) {
        this.log.warn({ err }, `stopping ${what} failed`);
      }
    };
    clearInterval(this.purgeTimer);
    // Refuse new dispatches first (503 WORKER_DRAINING): one accepted after the kill below would
    // start a task nobody stops or hands back.
    this.executor?.drain();
    await quietly('tasks', () => this.executor?.killAll('worker stopping; handed back', { handBack: true }));
    await quietly('task supervisor', () => this.supervisor?.stop());
    await quietly('reports', () => this.sender?.stop());
    // A failed-over incarnation's znode is gone with its session; a graceful stop deletes it
    // (and stops watching for the failover record; a failed-over one has stopped already).
    if (!wasTerminated) await quietly('registration', () => this.membership?.stop());
    await quietly('masters view', () => this.mastersView?.stop());
    await quietly('session', () => this.session?.close());
    await quietly('http', () => this.http?.close());
  }
}
