import { type Clock, type Logger, SessionLostError, systemClock, TimeoutError } from '@sched/core';
import zookeeper from 'node-zookeeper-client';
import { digestId, OPEN_ACL, parseDigestAuth, schedAcls, type ZkAcl } from './acl.js';
import { fromClientError, SessionClosedError, SessionSuspendedError, ZkError } from './errors.js';
import type { LeaseTransition } from './session-lease.js';
import { isLive, type SessionStatus } from './session-status.js';
import { SessionWatchdog } from './session-watchdog.js';
import { toZnodeStat, type ZnodeStat } from './stat.js';
import { systemTimers, type Timers } from './timers.js';
import { TypedEmitter } from './typed-emitter.js';

/**
 * `ZkSession` is the one component that owns a node-zookeeper-client `Client`. Everything
 * else in sched talks to ZooKeeper through it and gets:
 *
 * - promises with a per-request deadline (the library has none: a request to a black-holed
 *   server hangs until TCP gives up);
 * - a status (`SessionStatus`) decided by a local lease and a watchdog, not by the library,
 *   which stays SYNC_CONNECTED while the server is unreachable and reports EXPIRED only
 *   after it reconnects (see `session-lease.ts` for the state table);
 * - after LOST, a brand-new client and session, announced with a `session` event so the
 *   owners of ephemeral nodes and watches re-create them;
 * - `checkLease()`, which every side effect that depends on the session calls first.
 *
 * Watches are delivered only while the session they were set in is current: a watch of a
 * lost session is dropped (its owner re-arms on the `session` event).
 */

export type CreateModeName = 'persistent' | 'ephemeral' | 'persistent-sequential' | 'ephemeral-sequential';

const CREATE_MODES: Record<CreateModeName, number> = {
  persistent: zookeeper.CreateMode.PERSISTENT,
  ephemeral: zookeeper.CreateMode.EPHEMERAL,
  'persistent-sequential': zookeeper.CreateMode.PERSISTENT_SEQUENTIAL,
  'ephemeral-sequential': zookeeper.CreateMode.EPHEMERAL_SEQUENTIAL,
};

export type WatchEventType = 'created' | 'deleted' | 'dataChanged' | 'childrenChanged';
export interface WatchEvent {
  type: WatchEventType;
  path: string;
}
export type Watcher = (event: WatchEvent) => void;

const WATCH_TYPES: Record<number, WatchEventType> = {
  [zookeeper.Event.NODE_CREATED]: 'created',
  [zookeeper.Event.NODE_DELETED]: 'deleted',
  [zookeeper.Event.NODE_DATA_CHANGED]: 'dataChanged',
  [zookeeper.Event.NODE_CHILDREN_CHANGED]: 'childrenChanged',
};

export interface RequestOptions {
  /** Deadline for this request. @defaultValue the session's `requestTimeoutMs` */
  timeoutMs?: number;
  /** @internal the watchdog's probe, which must reach the new client while LOST */
  duringLost?: boolean;
}

export interface ZkSessionOptions {
  /** `host:port[,host:port…][/chroot]` */
  connectString: string;
  /** Requested session timeout; the server may negotiate another within [2, 20]·tickTime. */
  sessionTimeoutMs: number;
  /** Default per-request deadline. @defaultValue `sessionTimeoutMs` */
  requestTimeoutMs?: number;
  /**
   * Digest credentials `user:password`; when set, sched's znodes are created with a digest ACL
   * for this identity. Without, they are created open (`world:anyone`, all rights): the daemons
   * allow that only with `zk.insecure` (docs/security.md#zookeeper).
   */
  auth?: string;
  /**
   * With `auth`: whether everyone else may also read sched's znodes (never change them). Off by
   * default: operators' tools (`sched-ctl`) use the same credentials. @defaultValue false
   */
  aclWorldReadable?: boolean;
  /**
   * On SUSPENDED(silent), drop the socket so the library reconnects (to another server of an
   * ensemble), as the Java client does after its read timeout. With one server that gains
   * nothing and hides the evidence, so the default is: only for an ensemble.
   */
  reconnectWhenSilent?: boolean;
  clock?: Clock;
  timers?: Timers;
  logger?: Logger;
}

/** The constant defaults of {@link ZkSessionOptions}; `requestTimeoutMs` and `reconnectWhenSilent` depend on the session. */
export const DEFAULT_ZK_SESSION_OPTIONS = { aclWorldReadable: false } as const satisfies Required<
  Pick<ZkSessionOptions, 'aclWorldReadable'>
>;

export interface SessionInfo {
  sessionId: string;
  generation: number;
}

export interface LeaseInfo extends SessionInfo {
  /** How much longer the lease certainly holds. */
  remainingMs: number;
  status: SessionStatus;
}

export interface ZkSessionEvents {
  /** Every status change, in order. */
  status: [status: SessionStatus, previous: SessionStatus];
  /**
   * A session was established: the first one, or a brand-new one after LOST. Owners of
   * ephemeral nodes and watches create/re-create them here.
   */
  session: [info: SessionInfo];
  /** The session was lost (LOST): ephemerals and watches of `info` are gone or going. */
  lost: [info: SessionInfo & { reason: 'lease-expired' | 'expired' }];
  /**
   * ZooKeeper granted a session timeout other than the one in force (at the first connect: other
   * than the requested one). The lease uses `grantedMs` from now on; whatever else is timed by
   * the session timeout (the worker's task supervisor) must follow.
   */
  sessionTimeout: [info: { requestedMs: number; grantedMs: number; previousMs: number }];
}

/** The parts of node-zookeeper-client's Client we use, including its internals we must reach. */
type RawClient = zookeeper.Client & {
  connectionManager: { socket?: { destroy(): void }; connect(): void; servers: unknown[] };
};

interface InFlight {
  client: RawClient;
  reject(err: unknown): void;
}

export class ZkSession extends TypedEmitter<ZkSessionEvents> {
  readonly connectString: string;
  /** The session timeout asked for; ZooKeeper may grant another (`sessionTimeoutMs`). */
  readonly requestedSessionTimeoutMs: number;
  readonly requestTimeoutMs: number;
  /** The ACL every znode this session creates gets (unless a create names another). */
  readonly acls: ZkAcl[];
  /** This session's digest identity `user:base64(sha1(user:password))`, undefined without `auth`. */
  readonly digestId: string | undefined;
  private readonly clock: Clock;
  private readonly timers: Timers;
  private readonly log: Logger | undefined;
  private readonly watchdog: SessionWatchdog;
  private readonly inFlight = new Set<InFlight>();
  private readonly auth: string | undefined;
  private readonly reconnectWhenSilent: boolean | undefined;
  private client!: RawClient;
  private clientSince = 0;
  private currentStatus: SessionStatus = { kind: 'CONNECTING' };
  private closed = false;

  private constructor(opts: ZkSessionOptions) {
    super((err, event) => this.log?.error({ err, event }, 'session listener threw'));
    this.connectString = opts.connectString;
    this.requestedSessionTimeoutMs = opts.sessionTimeoutMs;
    this.requestTimeoutMs = opts.requestTimeoutMs ?? opts.sessionTimeoutMs;
    this.clock = opts.clock ?? systemClock;
    this.timers = opts.timers ?? systemTimers;
    this.log = opts.logger?.child({ component: 'zk-session' });
    this.auth = opts.auth;
    this.reconnectWhenSilent = opts.reconnectWhenSilent;
    const digest = opts.auth ? parseDigestAuth(opts.auth) : undefined;
    this.digestId = digest ? digestId(digest) : undefined;
    this.acls = digest
      ? schedAcls(digest, opts.aclWorldReadable ?? DEFAULT_ZK_SESSION_OPTIONS.aclWorldReadable)
      : OPEN_ACL;
    this.watchdog = new SessionWatchdog({
      clock: this.clock,
      timers: this.timers,
      sessionTimeoutMs: opts.sessionTimeoutMs,
      link: { probe: () => this.probe() },
      onTransition: (t) => this.onTransition(t),
    });
  }

  /**
   * Connects and resolves once the first session is established.
   * @throws TimeoutError when no session is established within `connectTimeoutMs`
   *   (default: twice the session timeout); the half-made session is closed.
   */
  static async connect(opts: ZkSessionOptions & { connectTimeoutMs?: number }): Promise<ZkSession> {
    const session = new ZkSession(opts);
    session.replaceClient();
    session.watchdog.start();
    const limit = opts.connectTimeoutMs ?? opts.sessionTimeoutMs * 2;
    try {
      await session.waitFor((s) => isLive(s), limit);
    } catch (err) {
      await session.close();
      throw new TimeoutError(
        `could not connect to ZooKeeper at ${opts.connectString} within ${limit} ms; ` +
          'check zk.connect (SCHED_ZK, --zk) and that ZooKeeper is running',
        {
          cause: err,
        },
      );
    }
    return session;
  }

  get status(): SessionStatus {
    return this.currentStatus;
  }

  /**
   * Negotiated session timeout (the requested one until the first connect): ZooKeeper clamps the
   * request into its [minSessionTimeout, maxSessionTimeout] (by default 2 and 20 ticks).
   */
  get sessionTimeoutMs(): number {
    return this.watchdog.sessionTimeoutMs;
  }

  /**
   * Milliseconds the session lease certainly still holds, at this instant (≤ 0: it does not —
   * no session yet, or LOST, or CLOSED). A plain read with no side effects: a deadline to hand
   * on (the task supervisor kills at it); side effects call `checkLease()` instead.
   */
  leaseRemainingMs(): number {
    const s = this.currentStatus;
    if (s.kind !== 'CONNECTED' && s.kind !== 'RECONNECTED' && s.kind !== 'SUSPENDED') return 0;
    return this.watchdog.peekRemainingMs();
  }

  /** Hex id of the current session, `undefined` while there is none. */
  get sessionId(): string | undefined {
    const s = this.currentStatus;
    return s.kind === 'CONNECTED' || s.kind === 'RECONNECTED' || s.kind === 'SUSPENDED'
      ? s.sessionId
      : undefined;
  }

  get generation(): number {
    const s = this.currentStatus;
    return 'generation' in s ? s.generation : 0;
  }

  /** The raw library client, for tests that must show what the library itself believes. */
  get rawClient(): zookeeper.Client {
    return this.client;
  }

  /** Raw session id and password of the current client (tests use them to expire the session on the server). */
  get credentials(): { sessionId: Buffer; sessionPassword: Buffer } {
    return { sessionId: this.client.getSessionId(), sessionPassword: this.client.getSessionPassword() };
  }

  /**
   * Checks, at this instant on the monotonic clock, that the session lease holds, and
   * returns it. A paused process that wakes up fails this check before acting.
   * @param opts.allowSuspended accept SUSPENDED (the session may be alive) @defaultValue false
   * @param opts.needMs the lease must hold at least this much longer @defaultValue 0
   * @throws SessionLostError when LOST/CLOSED/not connected or the lease ran out;
   *   SessionSuspendedError when SUSPENDED and not allowed.
   */
  checkLease(opts: { allowSuspended?: boolean; needMs?: number } = {}): LeaseInfo {
    const remainingMs = this.watchdog.remainingMs(); // applies elapsed time first
    const s = this.currentStatus;
    if (s.kind === 'SUSPENDED') {
      if (!opts.allowSuspended)
        throw new SessionSuspendedError(`ZooKeeper session ${s.sessionId} is suspended (${s.reason})`);
    } else if (s.kind !== 'CONNECTED' && s.kind !== 'RECONNECTED') {
      throw new SessionLostError(`no ZooKeeper session lease (status ${s.kind})`);
    }
    if (remainingMs <= (opts.needMs ?? 0)) {
      throw new SessionLostError(`ZooKeeper session lease holds only ${Math.round(remainingMs)} ms more`);
    }
    return { sessionId: s.sessionId, generation: s.generation, remainingMs, status: s };
  }

  /** Calls `fn` for the current session (if established) and for every later new session. */
  onEverySession(fn: (info: SessionInfo) => void): () => void {
    const off = this.on('session', fn);
    const s = this.currentStatus;
    if (isLive(s) || s.kind === 'SUSPENDED') {
      try {
        fn({ sessionId: s.sessionId, generation: s.generation });
      } catch (err) {
        this.log?.error({ err }, 'session listener threw');
      }
    }
    return off;
  }

  /** Resolves when `predicate(status)` holds; rejects after `timeoutMs` or when closed. */
  waitFor(predicate: (s: SessionStatus) => boolean, timeoutMs: number): Promise<SessionStatus> {
    if (predicate(this.currentStatus)) return Promise.resolve(this.currentStatus);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        off();
        reject(
          new TimeoutError(
            `session status condition not met within ${timeoutMs} ms (now ${this.currentStatus.kind})`,
          ),
        );
      }, timeoutMs);
      const off = this.on('status', (s) => {
        if (predicate(s)) {
          clearTimeout(timer);
          off();
          resolve(s);
        } else if (s.kind === 'CLOSED') {
          clearTimeout(timer);
          off();
          reject(new SessionClosedError());
        }
      });
    });
  }

  // ---- requests -------------------------------------------------------------------------

  create(
    path: string,
    data: Buffer | undefined,
    opts: RequestOptions & { mode?: CreateModeName; acl?: ZkAcl[] } = {},
  ): Promise<string> {
    const mode = CREATE_MODES[opts.mode ?? 'persistent'];
    const acl = opts.acl ?? this.acls;
    return this.request('create', path, opts, (c, cb) =>
      data === undefined
        ? c.create(path, acl, mode, (e, p) => cb(e, p))
        : c.create(path, data, acl, mode, (e, p) => cb(e, p)),
    );
  }

  /** The node's stat, or `undefined` when it does not exist. */
  exists(path: string, watcher?: Watcher, opts: RequestOptions = {}): Promise<ZnodeStat | undefined> {
    return this.request('exists', path, opts, (c, cb) => {
      const done = (e: unknown, stat: zookeeper.Stat | null | undefined) =>
        cb(e, stat ? toZnodeStat(stat) : undefined);
      if (watcher) c.exists(path, this.wrapWatcher(c, watcher), done);
      else c.exists(path, done);
    });
  }

  getData(
    path: string,
    watcher?: Watcher,
    opts: RequestOptions = {},
  ): Promise<{ data: Buffer; stat: ZnodeStat }> {
    return this.request('getData', path, opts, (c, cb) => {
      const done = (e: unknown, data: Buffer | null, stat: zookeeper.Stat) =>
        cb(e, e ? undefined : { data: data ?? Buffer.alloc(0), stat: toZnodeStat(stat) });
      if (watcher) c.getData(path, this.wrapWatcher(c, watcher), done);
      else c.getData(path, done);
    });
  }

  /** Conditional when `version` ≥ 0 (0 included); -1 writes unconditionally. */
  setData(path: string, data: Buffer, version = -1, opts: RequestOptions = {}): Promise<ZnodeStat> {
    return this.request('setData', path, opts, (c, cb) =>
      c.setData(path, data, version, (e, stat) => cb(e, e ? undefined : toZnodeStat(stat))),
    );
  }

  /** Conditional when `version` ≥ 0 (0 included); -1 deletes unconditionally. */
  remove(path: string, version = -1, opts: RequestOptions = {}): Promise<void> {
    return this.request('remove', path, opts, (c, cb) => c.remove(path, version, (e) => cb(e, undefined)));
  }

  /** The node's ACL and stat (ZooKeeper requires READ or ADMIN on it). */
  getAcl(path: string, opts: RequestOptions = {}): Promise<{ acl: ZkAcl[]; stat: ZnodeStat }> {
    return this.request('getACL', path, opts, (c, cb) =>
      c.getACL(path, (e, acl, stat) => cb(e, e ? undefined : { acl, stat: toZnodeStat(stat) })),
    );
  }

  /** Replaces the node's ACL (ZooKeeper requires ADMIN on it); conditional on the ACL version when `aclVersion` ≥ 0. */
  setAcl(path: string, acl: ZkAcl[], aclVersion = -1, opts: RequestOptions = {}): Promise<ZnodeStat> {
    return this.request('setACL', path, opts, (c, cb) =>
      c.setACL(path, acl, aclVersion, (e, stat) => cb(e, e ? undefined : toZnodeStat(stat))),
    );
  }

  getChildren(
    path: string,
    watcher?: Watcher,
    opts: RequestOptions = {},
  ): Promise<{ children: string[]; stat: ZnodeStat }> {
    return this.request('getChildren', path, opts, (c, cb) => {
      const done = (e: unknown, children: string[], stat: zookeeper.Stat) =>
        cb(e, e ? undefined : { children, stat: toZnodeStat(stat) });
      if (watcher) c.getChildren(path, this.wrapWatcher(c, watcher), done);
      else c.getChildren(path, done);
    });
  }

  /** Creates `path` and its missing parents as persistent nodes (with the session's ACLs). */
  async mkdirp(path: string, opts: RequestOptions = {}): Promise<void> {
    const parts = path.split('/').filter(Boolean);
    let current = '';
    for (const part of parts) {
      current += `/${part}`;
      if (await this.exists(current, undefined, opts)) continue;
      try {
        await this.create(current, undefined, opts);
      } catch (err) {
        if (!(err instanceof ZkError && err.zkCode === 'NODE_EXISTS')) throw err;
      }
    }
  }

  /**
   * Runs raw library work through the session's deadline and bookkeeping. Exposed for the
   * transaction builder in `multi.ts`; other code uses the typed methods.
   * @internal
   */
  request<T>(
    op: string,
    path: string | undefined,
    opts: RequestOptions,
    run: (client: RawClient, cb: (err: unknown, value?: T) => void) => void,
  ): Promise<T> {
    if (this.closed) return Promise.reject(new SessionClosedError());
    // Between LOST and the new session, nothing may be done on anyone's behalf: a request
    // queued on the fresh client would run in a session its caller does not know about
    // (e.g. an orphan election candidate). Only the watchdog's probe goes through.
    if (this.currentStatus.kind === 'LOST' && !opts.duringLost) {
      return Promise.reject(
        new SessionLostError(`ZooKeeper ${op}: the session is lost; a new one is being made`),
      );
    }
    const client = this.client;
    const sentAt = this.clock.monotonic();
    const timeoutMs = opts.timeoutMs ?? this.requestTimeoutMs;
    return new Promise<T>((resolve, reject) => {
      let settled = false;
      const entry: InFlight = {
        client,
        reject: (err) => finish(() => reject(err)),
      };
      const timer = setTimeout(() => {
        finish(() =>
          reject(
            new TimeoutError(`ZooKeeper ${op}${path ? ` ${path}` : ''} got no answer within ${timeoutMs} ms`),
          ),
        );
      }, timeoutMs);
      const finish = (then: () => void) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        this.inFlight.delete(entry);
        then();
      };
      this.inFlight.add(entry);
      try {
        run(client, (err, value) => {
          if (settled) return;
          if (client !== this.client) {
            finish(() => reject(new SessionLostError(`ZooKeeper ${op} answered by a lost session`)));
            return;
          }
          if (err) {
            const zkErr = err instanceof ZkError ? err : fromClientError(err, op, path);
            if (zkErr.zkCode === 'SESSION_EXPIRED') {
              this.watchdog.expired();
              finish(() =>
                reject(new SessionLostError(`ZooKeeper session expired during ${op}`, { cause: zkErr })),
              );
              return;
            }
            // Any answer from the server (even an error) proves the session was alive when we sent.
            if (zkErr.zkCode !== 'CONNECTION_LOSS' && zkErr.zkCode !== 'CLIENT_ERROR') {
              this.watchdog.reply(client.getSessionId().toString('hex'), sentAt);
            }
            finish(() => reject(zkErr));
            return;
          }
          this.watchdog.reply(client.getSessionId().toString('hex'), sentAt);
          finish(() => resolve(value as T));
        });
      } catch (err) {
        // The library validates arguments synchronously (paths, data size) with assertions.
        finish(() =>
          reject(
            new ZkError('BAD_ARGUMENTS', `ZooKeeper ${op} ${path ?? ''}: ${String(err)}`, { cause: err }),
          ),
        );
      }
    });
  }

  /** Closes the session (its ephemeral nodes go at once); the status becomes CLOSED. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.watchdog.stop(true);
    const client = this.client;
    this.rejectInFlight(client, new SessionClosedError());
    await new Promise<void>((resolve) => {
      const timer = setTimeout(done, Math.min(2000, this.sessionTimeoutMs));
      function done() {
        clearTimeout(timer);
        resolve();
      }
      const connected = client.getState() === zookeeper.State.SYNC_CONNECTED;
      this.disposeClient(client);
      // The library emits DISCONNECTED once the server has answered the close (or the socket died).
      if (connected) client.once('disconnected', done);
      else setImmediate(done);
    });
  }

  // ---- internals ------------------------------------------------------------------------

  private probe(): Promise<{ sessionId: string; sentAt: number }> {
    this.kickIfStuckConnecting();
    const sentAt = this.clock.monotonic();
    const client = this.client;
    return this.exists('/', undefined, { timeoutMs: (this.sessionTimeoutMs * 2) / 3, duringLost: true }).then(
      () => ({
        sessionId: client.getSessionId().toString('hex'),
        sentAt,
      }),
    );
  }

  /**
   * The library can hang forever between TCP connect and the ConnectResponse (upstream PR
   * #57), and after LOST a fresh client may sit behind a dead network: if a client has not
   * connected for a whole session timeout, drop its socket so the library tries again.
   */
  private kickIfStuckConnecting(): void {
    if (this.client.getState() === zookeeper.State.SYNC_CONNECTED) {
      this.clientSince = this.clock.monotonic();
      return;
    }
    if (this.clock.monotonic() - this.clientSince >= this.sessionTimeoutMs) {
      this.clientSince = this.clock.monotonic();
      this.log?.debug('no connection for a session timeout; dropping the socket to retry');
      this.client.connectionManager.socket?.destroy();
    }
  }

  private onTransition(t: LeaseTransition): void {
    const previous = this.currentStatus;
    this.currentStatus = t.to;
    const to = t.to;
    this.log?.info(
      { from: previous.kind, to: to.kind, ...('reason' in to ? { reason: to.reason } : {}) },
      'session status',
    );
    if (to.kind === 'LOST') {
      // The old client's answers no longer count; pending requests fail now, not at their deadline.
      const old = this.client;
      this.rejectInFlight(old, new SessionLostError(`ZooKeeper session ${to.sessionId} lost (${to.reason})`));
      this.disposeClient(old);
      if (!this.closed) this.replaceClient();
    }
    if (to.kind === 'SUSPENDED' && to.reason === 'silent' && this.shouldReconnectWhenSilent()) {
      this.client.connectionManager.socket?.destroy();
    }
    this.emit('status', to, previous);
    if (to.kind === 'LOST')
      this.emit('lost', { sessionId: to.sessionId, generation: to.generation, reason: to.reason });
    if (to.kind === 'CONNECTED' || (to.kind === 'RECONNECTED' && to.newSession)) {
      this.emit('session', { sessionId: to.sessionId, generation: to.generation });
    }
  }

  private shouldReconnectWhenSilent(): boolean {
    return this.reconnectWhenSilent ?? this.client.connectionManager.servers.length > 1;
  }

  private replaceClient(): void {
    const client = zookeeper.createClient(this.connectString, {
      sessionTimeout: this.watchdog.sessionTimeoutMs,
      spinDelay: 100,
      retries: 0, // never retry blindly: a retried sequential create can duplicate (see protected-create.ts)
    }) as RawClient;
    if (this.auth) client.addAuthInfo('digest', Buffer.from(this.auth));
    client.on('connected', () => {
      if (client !== this.client) return;
      this.applyGrantedTimeout(client.getSessionTimeout());
      this.watchdog.probeNow();
    });
    client.on('disconnected', () => {
      if (client === this.client) this.watchdog.disconnected();
    });
    client.on('expired', () => {
      if (client === this.client) this.watchdog.expired();
    });
    client.on('authenticationFailed', () => {
      if (client === this.client) this.log?.error('ZooKeeper rejected the digest credentials (zk.auth)');
    });
    this.client = client;
    this.clientSince = this.clock.monotonic();
    client.connect();
  }

  /** The server's answer to our session timeout: the lease follows it, and so must everyone else. */
  private applyGrantedTimeout(grantedMs: number): void {
    const previousMs = this.watchdog.sessionTimeoutMs;
    if (grantedMs === previousMs) return;
    this.watchdog.setSessionTimeout(grantedMs);
    this.log?.info(
      { requestedMs: this.requestedSessionTimeoutMs, grantedMs, previousMs },
      `ZooKeeper granted a session timeout of ${grantedMs} ms (requested ${this.requestedSessionTimeoutMs} ms); the lease uses it`,
    );
    this.emit('sessionTimeout', { requestedMs: this.requestedSessionTimeoutMs, grantedMs, previousMs });
  }

  private disposeClient(client: RawClient): void {
    client.removeAllListeners('connected');
    client.removeAllListeners('disconnected');
    client.removeAllListeners('expired');
    const cm = client.connectionManager;
    // Stop the library's endless reconnect loop for this client; it belongs to a dead session.
    cm.connect = () => {};
    try {
      client.close();
    } catch (err) {
      this.log?.debug({ err }, 'closing the old client threw');
    }
    // A close request to a black-holed server is never answered; do not leave the socket behind.
    const timer = setTimeout(() => cm.socket?.destroy(), 1000);
    timer.unref();
  }

  private rejectInFlight(client: RawClient, err: Error): void {
    for (const entry of [...this.inFlight]) {
      if (entry.client === client) entry.reject(err);
    }
  }

  private wrapWatcher(client: RawClient, watcher: Watcher): (event: zookeeper.Event) => void {
    return (event) => {
      if (client !== this.client || this.closed) return;
      const type = WATCH_TYPES[event.type];
      if (!type) return;
      try {
        watcher({ type, path: event.path });
      } catch (err) {
        this.log?.error({ err, path: event.path }, 'watcher threw');
      }
    };
  }
}
