import { type Logger, SessionLostError } from '@sched/core';
import { isZkError } from './errors.js';
import { type Heartbeat, masterHeartbeatSchema, workerHeartbeatSchema } from './heartbeat.js';
import { encodeJson } from './json-node.js';
import type { MemberRole, RegistryPaths } from './registry-paths.js';
import { TypedEmitter } from './typed-emitter.js';
import type { SessionInfo, ZkSession } from './zk-session.js';

/**
 * Registers this incarnation as `{root}/masters|workers/{host:port_startTime}`: an ephemeral
 * znode holding the heartbeat JSON, refreshed every `intervalMs` and at once on `refresh()`
 * (call it on a state change: BUSY, DRAINING…).
 *
 * The node lives and dies with the session. On every new session (the first, and each one
 * after LOST) `beforeRegister` runs first — the daemon checks its FAILOVER_FINISH_NODES
 * record there and throws if it has been failed over — then the node is created again. A
 * leftover node of our own dead session (the server may not have expired it yet) is
 * deleted first, so the new one is owned by the live session.
 *
 * A re-registration that fails (ZooKeeper refused the create, a request timed out,
 * `beforeRegister` could not read what it needs…) is retried in the same session with an
 * exponential backoff (`retryMinMs` doubling up to `retryMaxMs`), each failure logged and
 * emitted as `error`, until it succeeds, the session is lost (the next session registers), the
 * error is a refusal (`isRefusal`: the incarnation must not come back), or `stop()`. Only the
 * first registration is not retried: `start()` rejects with its error. `state` tells where it is.
 *
 * | state        | event                                   | next                                 |
 * |--------------|-----------------------------------------|--------------------------------------|
 * | idle         | start()                                 | registering (for the current session)|
 * | registering  | created / taken over                    | registered (event `registered`)      |
 * | registering  | the first registration failed           | idle (`error`; `start()` rejects)    |
 * | registering  | a re-registration failed                | retrying (`error`, then `retrying`)  |
 * | registering  | refused (`isRefusal(err)`)              | refused (`error`; no retry)          |
 * | retrying     | the backoff elapsed, same session       | registering                          |
 * | registered   | new session                             | registering                          |
 * | registered   | our node deleted by someone             | registering (same session)           |
 * | any          | stop()                                  | stopped (node deleted)               |
 */
export interface MemberRegistrationOptions {
  role: MemberRole;
  /** This incarnation's key, `host:port_startTime` (docs/design.md#identity): the znode's name. */
  nodeKey: string;
  /** The heartbeat to publish now. Called for every write. */
  heartbeat: () => Heartbeat;
  /** How often the heartbeat is rewritten. @defaultValue 5000 */
  intervalMs?: number;
  /** Runs before each (re-)registration; throwing prevents it (retried unless `isRefusal`). */
  beforeRegister?: (info: SessionInfo & { first: boolean }) => Promise<void>;
  /**
   * Whether a registration error is a refusal: the incarnation must not register again (it was
   * failed over), so it is not retried. @defaultValue none (every failure is retried)
   */
  isRefusal?: (err: unknown) => boolean;
  /** First wait before retrying a failed re-registration. @defaultValue 200 */
  retryMinMs?: number;
  /** Longest wait between retries of a failed re-registration. @defaultValue 5000 */
  retryMaxMs?: number;
  logger?: Logger;
}

export const DEFAULT_MEMBER_REGISTRATION_OPTIONS = {
  intervalMs: 5_000,
  retryMinMs: 200,
  retryMaxMs: 5_000,
} as const satisfies Required<Pick<MemberRegistrationOptions, 'intervalMs' | 'retryMinMs' | 'retryMaxMs'>>;

/** Where the registration is (the table above). */
export type RegistrationState = 'idle' | 'registering' | 'registered' | 'retrying' | 'refused' | 'stopped';

export interface Registration {
  path: string;
  sessionId: string;
  generation: number;
  /** czxid of the registration znode: identifies this registration for fencing. */
  czxid: bigint;
}

export interface MemberRegistrationEvents {
  registered: [registration: Registration];
  /** Every failed (re-)registration. */
  error: [err: unknown];
  /** A failed re-registration is tried again in `delayMs` (`failures` in a row so far). */
  retrying: [retry: { failures: number; delayMs: number; err: unknown }];
}

export class MemberRegistration extends TypedEmitter<MemberRegistrationEvents> {
  readonly path: string;
  private readonly intervalMs: number;
  private readonly log: Logger | undefined;
  private current: Registration | undefined;
  private timer: NodeJS.Timeout | undefined;
  private offSession: (() => void) | undefined;
  private stopped = false;
  private first = true;
  private registering: Promise<void> | undefined;
  private phase: RegistrationState = 'idle';
  /** Failed attempts in a row of the registration under way (0 once registered). */
  private failuresInRow = 0;
  private lastFailure: unknown;
  /** Session generation the failures in a row belong to (a new session starts a new count). */
  private failingGeneration = 0;
  private retryTimer: NodeJS.Timeout | undefined;

  constructor(
    private readonly session: ZkSession,
    private readonly paths: RegistryPaths,
    private readonly opts: MemberRegistrationOptions,
  ) {
    super();
    this.path = paths.member(opts.role, opts.nodeKey);
    this.intervalMs = opts.intervalMs ?? DEFAULT_MEMBER_REGISTRATION_OPTIONS.intervalMs;
    this.log = opts.logger?.child({ component: 'membership', role: opts.role });
  }

  get registration(): Registration | undefined {
    return this.current;
  }

  /** Where the registration is: `retrying` while a failed re-registration waits for its next try. */
  get state(): RegistrationState {
    return this.phase;
  }

  /** Failed attempts in a row of the registration under way (0 once registered), and the last error. */
  get failures(): { inRow: number; last: unknown } {
    return { inRow: this.failuresInRow, last: this.lastFailure };
  }

  /** Registers for the current session and keeps the registration up; resolves once registered. */
  async start(): Promise<Registration> {
    await this.session.mkdirp(this.paths.members(this.opts.role));
    const registered = new Promise<Registration>((resolve, reject) => {
      const offOk = this.once('registered', (r) => {
        offErr();
        resolve(r);
      });
      const offErr = this.once('error', (err) => {
        offOk();
        reject(err);
      });
    });
    this.offSession = this.session.onEverySession((info) => this.register(info));
    this.timer = setInterval(() => void this.refresh().catch(() => {}), this.intervalMs);
    return registered;
  }

  /** Writes the heartbeat now (the node must be registered in the live session). */
  async refresh(): Promise<void> {
    const reg = this.current;
    if (!reg || this.stopped) return;
    const lease = this.session.checkLease({ allowSuspended: false });
    if (lease.generation !== reg.generation) return; // re-registration is under way
    try {
      await this.session.setData(this.path, this.encode());
    } catch (err) {
      if (isZkError(err, 'NO_NODE')) {
        this.log?.warn('registration znode vanished; registering again');
        this.register({ sessionId: lease.sessionId, generation: lease.generation });
        return;
      }
      throw err;
    }
  }

  /** Deregisters (deletes the znode) and stops refreshing. Graceful: nothing is failed over. */
  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    this.phase = 'stopped';
    clearInterval(this.timer);
    clearTimeout(this.retryTimer);
    this.offSession?.();
    await this.registering?.catch(() => {});
    const reg = this.current;
    this.current = undefined;
    if (!reg) return;
    try {
      const stat = await this.session.exists(this.path);
      if (stat && stat.czxid === reg.czxid) await this.session.remove(this.path, stat.version);
    } catch (err) {
      this.log?.warn({ err }, 'could not delete the registration znode; it goes with the session');
    }
  }

  private encode(): Buffer {
    const schema = this.opts.role === 'worker' ? workerHeartbeatSchema : masterHeartbeatSchema;
    return encodeJson(schema.parse(this.opts.heartbeat()));
  }

  private register(info: SessionInfo): void {
    if (this.stopped) return;
    // A newer request (a new session, our node deleted) replaces a pending retry.
    clearTimeout(this.retryTimer);
    this.retryTimer = undefined;
    const run = async () => {
      if (this.stopped || this.phase === 'refused') return;
      const first = this.first;
      this.first = false;
      this.phase = 'registering';
      try {
        await this.opts.beforeRegister?.({ ...info, first });
        const reg = await this.createFor(info);
        if (this.stopped || this.session.generation !== info.generation) return;
        this.current = reg;
        this.phase = 'registered';
        const failures = this.failuresInRow;
        this.failuresInRow = 0;
        this.lastFailure = undefined;
        this.watchOwnNode(reg);
        this.log?.info(
          { path: reg.path, generation: reg.generation, ...(failures > 0 ? { failures } : {}) },
          failures > 0 ? `registered after ${failures} failed attempt(s)` : 'registered',
        );
        this.emit('registered', reg);
      } catch (err) {
        if (this.stopped) return;
        if (err instanceof SessionLostError) return; // the next session registers again
        this.failed(info, err, first);
      }
    };
    const previous = this.registering ?? Promise.resolve();
    this.registering = previous.then(run, run);
  }

  /** A failed attempt: refused, given up (the first one), or retried after a backoff. */
  private failed(info: SessionInfo, err: unknown, first: boolean): void {
    if (this.failingGeneration !== info.generation) {
      this.failingGeneration = info.generation;
      this.failuresInRow = 0;
    }
    this.failuresInRow++;
    this.lastFailure = err;
    const refused = this.opts.isRefusal?.(err) ?? false;
    if (refused || first) {
      this.phase = refused ? 'refused' : 'idle';
      this.log?.error({ err }, refused ? 'registration refused' : 'registration failed');
      this.emit('error', err);
      return;
    }
    const min = this.opts.retryMinMs ?? DEFAULT_MEMBER_REGISTRATION_OPTIONS.retryMinMs;
    const max = this.opts.retryMaxMs ?? DEFAULT_MEMBER_REGISTRATION_OPTIONS.retryMaxMs;
    const delayMs = Math.min(max, min * 2 ** Math.min(this.failuresInRow - 1, 30));
    this.phase = 'retrying';
    this.log?.error(
      { err, failures: this.failuresInRow, retryInMs: delayMs, generation: info.generation },
      `registration failed (${this.failuresInRow} in a row); not registered, retrying in ${delayMs} ms`,
    );
    this.emit('error', err);
    this.emit('retrying', { failures: this.failuresInRow, delayMs, err });
    this.retryTimer = setTimeout(() => {
      this.retryTimer = undefined;
      // A new session registers on its own (onEverySession); this one's retry is moot then.
      if (this.stopped || this.session.generation !== info.generation) return;
      this.register(info);
    }, delayMs);
  }

  private async createFor(info: SessionInfo): Promise<Registration> {
    for (let attempt = 1; ; attempt++) {
      if (this.session.generation !== info.generation)
        throw new SessionLostError('session changed while registering');
      try {
        await this.session.create(this.path, this.encode(), { mode: 'ephemeral' });
      } catch (err) {
        if (isZkError(err, 'NO_NODE') && attempt < 5) {
          // The members' parent is gone (deleted by hand): put the layout's parent back.
          this.log?.warn(
            { parent: this.paths.members(this.opts.role) },
            'members parent missing; creating it',
          );
          await this.session.mkdirp(this.paths.members(this.opts.role));
          continue;
        }
        if (!isZkError(err, 'NODE_EXISTS') || attempt >= 5) throw err;
        const stat = await this.session.exists(this.path);
        if (stat && stat.ephemeralOwner !== info.sessionId) {
          // Ours from a dead session (same incarnation key): take it over.
          await this.session.remove(this.path, stat.version).catch((e) => {
            if (!isZkError(e, 'NO_NODE') && !isZkError(e, 'BAD_VERSION')) throw e;
          });
          continue;
        }
        if (!stat) continue;
        await this.session.setData(this.path, this.encode());
      }
      const stat = await this.session.exists(this.path);
      if (!stat || stat.ephemeralOwner !== info.sessionId) continue;
      return { path: this.path, sessionId: info.sessionId, generation: info.generation, czxid: stat.czxid };
    }
  }

  /** If someone deletes our node while our session lives (an operator), put it back. */
  private watchOwnNode(reg: Registration): void {
    this.session
      .exists(this.path, (event) => {
        if (this.stopped || this.current !== reg) return;
        if (event.type === 'deleted' && this.session.generation === reg.generation) {
          this.log?.warn('registration znode was deleted; registering again');
          this.register({ sessionId: reg.sessionId, generation: reg.generation });
        } else {
          this.watchOwnNode(reg);
        }
      })
      .catch(() => {});
  }
}
