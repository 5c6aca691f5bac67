import { type Logger, SessionLostError, TimeoutError } from '@sched/core';
import { isZkError, LockLostError } from './errors.js';
import { parseSequentialName, protectedCreate } from './protected-create.js';
import type { RegistryPaths } from './registry-paths.js';
import { Wakeup } from './wakeup.js';
import type { ZkSession } from './zk-session.js';

/**
 * A namespaced distributed lock (ZooKeeper's lock recipe): a protected ephemeral sequential
 * node `{root}/locks/{name}/{guid}-lock-{seq}`; the lowest holds the lock; each waiter
 * watches only its predecessor. The node dies with the session, so a lock is released when
 * its holder's session is lost; the holder's `signal` aborts the moment its session is
 * SUSPENDED (default) or LOST, so it stops using the lock no later than others can get it.
 *
 * | state    | event                                         | next                       |
 * |----------|-----------------------------------------------|----------------------------|
 * | waiting  | our node is lowest and owned by our session   | held                       |
 * | waiting  | predecessor deleted                           | waiting (re-check)         |
 * | waiting  | acquire timeout / abort                       | gone (node deleted, throws)|
 * | waiting  | session LOST                                  | gone (throws SessionLost)  |
 * | held     | release()                                     | released (node deleted)    |
 * | held     | SUSPENDED (endOn=suspended) or LOST           | lost (signal aborted)      |
 */
export interface LockHandle {
  readonly name: string;
  readonly node: string;
  /** Fencing token of this hold: the lock node's czxid. */
  readonly token: bigint;
  /** Aborted with a LockLostError when the hold ends by itself (session trouble). */
  readonly signal: AbortSignal;
  /** Throws if the hold ended or the lease does not hold now. */
  check(): void;
  release(): Promise<void>;
}

export interface AcquireOptions {
  /** Give up after this long. @defaultValue wait forever */
  timeoutMs?: number;
  signal?: AbortSignal;
}

export class DistributedLock {
  readonly dir: string;
  private readonly log: Logger | undefined;

  constructor(
    private readonly session: ZkSession,
    paths: RegistryPaths,
    readonly name: string,
    private readonly opts: { endOn?: 'suspended' | 'lost'; logger?: Logger } = {},
  ) {
    this.dir = paths.lock(name);
    this.log = opts.logger?.child({ component: 'lock', lock: name });
  }

  /**
   * Waits for the lock.
   * @throws TimeoutError after `timeoutMs`; SessionLostError if the session is lost while waiting
   */
  async acquire(opts: AcquireOptions = {}): Promise<LockHandle> {
    const started = Date.now();
    const deadline = opts.timeoutMs === undefined ? Number.POSITIVE_INFINITY : started + opts.timeoutMs;
    const lease = this.session.checkLease();
    await this.session.mkdirp(this.dir);
    const me = await protectedCreate(this.session, this.dir, 'lock-', { mode: 'ephemeral-sequential' });
    const wakeup = new Wakeup();
    const offStatus = this.session.on('status', () => wakeup.wake());
    const onAbort = () => wakeup.wake();
    opts.signal?.addEventListener('abort', onAbort);
    let watched: string | undefined;
    try {
      for (;;) {
        wakeup.reset();
        if (this.session.generation !== lease.generation || this.session.status.kind === 'LOST') {
          throw new SessionLostError(`session lost while waiting for lock ${this.name}`);
        }
        if (opts.signal?.aborted) throw opts.signal.reason ?? new Error('aborted');
        const remaining = deadline - Date.now();
        if (remaining <= 0)
          throw new TimeoutError(`lock ${this.name} not acquired within ${opts.timeoutMs} ms`);
        const { children } = await this.session.getChildren(this.dir);
        const queue = children
          .map((n) => ({ n, p: parseSequentialName(n) }))
          .filter((c) => c.p !== undefined)
          .sort((a, b) => (a.p?.sequence ?? 0) - (b.p?.sequence ?? 0));
        const index = queue.findIndex((c) => c.n === me.name);
        if (index < 0) throw new SessionLostError(`lock node ${me.path} vanished (session expired?)`);
        if (index === 0) {
          const stat = await this.session.exists(me.path);
          const now = this.session.checkLease();
          if (!stat || stat.ephemeralOwner !== now.sessionId) {
            throw new SessionLostError(`lock node ${me.path} is not owned by the live session`);
          }
          return this.hold(me.path, stat.czxid, now.generation);
        }
        const predecessor = `${this.dir}/${queue[index - 1]?.n}`;
        const stat = await this.session.exists(
          predecessor,
          watched === predecessor
            ? undefined
            : () => {
                watched = undefined;
                wakeup.wake();
              },
        );
        watched = predecessor;
        if (!stat) continue;
        await wakeup.wait(deadline - Date.now());
      }
    } catch (err) {
      await this.session.remove(me.path).catch(() => {});
      throw err;
    } finally {
      offStatus();
      opts.signal?.removeEventListener('abort', onAbort);
    }
  }

  /** Runs `fn` holding the lock; releases afterwards whatever happens. */
  async withLock<T>(fn: (handle: LockHandle) => Promise<T>, opts: AcquireOptions = {}): Promise<T> {
    const handle = await this.acquire(opts);
    try {
      return await fn(handle);
    } finally {
      await handle.release();
    }
  }

  private hold(node: string, token: bigint, generation: number): LockHandle {
    const controller = new AbortController();
    const endOn = this.opts.endOn ?? 'suspended';
    let released = false;
    const off = this.session.on('status', (s) => {
      if (s.kind === 'LOST' || s.kind === 'CLOSED' || (s.kind === 'SUSPENDED' && endOn === 'suspended')) {
        off();
        controller.abort(new LockLostError(this.name, s.kind.toLowerCase()));
      }
    });
    const session = this.session;
    return {
      name: this.name,
      node,
      token,
      signal: controller.signal,
      check: () => {
        if (controller.signal.aborted) throw controller.signal.reason as Error;
        if (released) throw new LockLostError(this.name, 'released');
        const lease = session.checkLease({ allowSuspended: endOn === 'lost' });
        if (lease.generation !== generation) throw new LockLostError(this.name, 'session replaced');
      },
      release: async () => {
        if (released) return;
        released = true;
        off();
        if (session.generation !== generation) return; // the node went with the old session
        await session.remove(node).catch((err) => {
          if (!isZkError(err, 'NO_NODE'))
            this.log?.warn({ err, node }, 'could not delete the lock node; it goes with the session');
        });
      },
    };
  }
}
