import type { Clock } from '@sched/core';
import { type LeaseTransition, SessionLease } from './session-lease.js';
import type { SessionStatus } from './session-status.js';
import type { TimerHandle, Timers } from './timers.js';

/**
 * The watchdog node-zookeeper-client lacks (its read timeout is commented out, so a
 * black-holed server goes unnoticed): it keeps the `SessionLease` fed and on time.
 *
 * - every T/3 it sends a cheap request through `probe` (an `exists` on the root); the
 *   reply, like the reply to any other request, refreshes the lease;
 * - it arms one timer for the lease's next deadline (2/3·T ⇒ SUSPENDED, T ⇒ LOST), so the
 *   transitions happen on time even when nothing else runs;
 * - every transition goes to `onTransition`, synchronously, in order.
 *
 * It knows nothing about the client: `ZkSession` tells it about replies, disconnects and
 * expiry, which makes it testable with a fake clock and fake timers.
 */
export interface WatchdogLink {
  /**
   * Sends a cheap request on the current connection. Resolves with the session id that
   * answered and the monotonic time the request was sent; rejects if there was no answer.
   */
  probe(): Promise<{ sessionId: string; sentAt: number }>;
}

export interface SessionWatchdogOptions {
  clock: Clock;
  timers: Timers;
  /** Requested session timeout; replaced by the negotiated one via `setSessionTimeout`. */
  sessionTimeoutMs: number;
  link: WatchdogLink;
  onTransition: (t: LeaseTransition) => void;
}

export class SessionWatchdog {
  private readonly lease: SessionLease;
  private probeTimer: TimerHandle | undefined;
  private checkTimer: TimerHandle | undefined;
  private checkTimerAt = Number.POSITIVE_INFINITY;
  private probing = false;
  private stopped = false;

  constructor(private readonly opts: SessionWatchdogOptions) {
    this.lease = new SessionLease(opts.sessionTimeoutMs);
  }

  get status(): SessionStatus {
    return this.lease.status;
  }

  get sessionTimeoutMs(): number {
    return this.lease.sessionTimeoutMs;
  }

  get lastContactAt(): number {
    return this.lease.lastContactAt;
  }

  /** Starts the probe loop (the first probe goes out at once). */
  start(): void {
    this.stopped = false;
    this.probeNow();
  }

  setSessionTimeout(ms: number): void {
    if (ms === this.lease.sessionTimeoutMs) return;
    this.lease.setSessionTimeout(ms);
    this.rearmCheck();
  }

  /**
   * Milliseconds the lease still holds at this instant (≤ 0: it does not), read without applying
   * any transition: for callers that only pass the deadline on (the worker's task supervisor).
   */
  peekRemainingMs(): number {
    return this.lease.remainingMs(this.opts.clock.monotonic());
  }

  /** Milliseconds the lease still holds, after applying the time that has passed. */
  remainingMs(): number {
    const now = this.opts.clock.monotonic();
    this.apply(this.lease.tick(now));
    return this.lease.remainingMs(now);
  }

  reply(sessionId: string, sentAt: number): void {
    if (this.stopped) return;
    const now = this.opts.clock.monotonic();
    // Time first: a reply read after a long pause must not hide that the lease ran out meanwhile.
    this.apply(this.lease.tick(now));
    this.apply(this.lease.reply(sessionId, sentAt, now));
    this.rearmCheck();
  }

  disconnected(): void {
    if (this.stopped) return;
    const now = this.opts.clock.monotonic();
    this.apply(this.lease.tick(now));
    this.apply(this.lease.disconnected(now));
    this.rearmCheck();
  }

  expired(): void {
    if (this.stopped) return;
    const now = this.opts.clock.monotonic();
    this.apply(this.lease.tick(now));
    this.apply(this.lease.expired(now));
    this.rearmCheck();
  }

  /** Sends a probe now (e.g. right after the library reconnected), then every T/3. */
  probeNow(): void {
    if (this.stopped) return;
    this.opts.timers.clearTimeout(this.probeTimer);
    this.probeTimer = undefined;
    if (!this.probing) {
      this.probing = true;
      this.opts.link.probe().then(
        ({ sessionId, sentAt }) => {
          this.probing = false;
          this.reply(sessionId, sentAt);
        },
        () => {
          this.probing = false;
        },
      );
    }
    this.probeTimer = this.opts.timers.setTimeout(() => this.probeNow(), this.lease.sessionTimeoutMs / 3);
  }

  /** Stops all timers; with `close`, the status becomes CLOSED. */
  stop(close: boolean): void {
    if (close) this.apply(this.lease.close(this.opts.clock.monotonic()));
    this.stopped = true;
    this.opts.timers.clearTimeout(this.probeTimer);
    this.opts.timers.clearTimeout(this.checkTimer);
    this.probeTimer = undefined;
    this.checkTimer = undefined;
    this.checkTimerAt = Number.POSITIVE_INFINITY;
  }

  private apply(t: LeaseTransition | undefined): void {
    if (t) this.opts.onTransition(t);
  }

  private rearmCheck(): void {
    if (this.stopped) return;
    const at = this.lease.nextCheckAt();
    if (at === this.checkTimerAt) return;
    this.opts.timers.clearTimeout(this.checkTimer);
    this.checkTimer = undefined;
    this.checkTimerAt = at;
    if (!Number.isFinite(at)) return;
    const delay = Math.max(0, at - this.opts.clock.monotonic());
    this.checkTimer = this.opts.timers.setTimeout(() => {
      this.checkTimer = undefined;
      this.checkTimerAt = Number.POSITIVE_INFINITY;
      if (this.stopped) return;
      this.apply(this.lease.tick(this.opts.clock.monotonic()));
      this.rearmCheck();
    }, delay);
  }
}
