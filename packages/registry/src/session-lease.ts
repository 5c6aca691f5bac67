import type { SessionStatus } from './session-status.js';

/**
 * The local lease on the ZooKeeper session: a pure state machine, fed with facts (a reply,
 * the socket dropped, the server said EXPIRED) and the monotonic time, that decides the
 * session status. It owns no timers; `ZkSession` asks `nextCheckAt()` when to call `tick()`.
 *
 * The lease is measured from the moment the newest *answered* request was sent (`lastContact`),
 * not from when its reply arrived: the server heard us no earlier than that, so it cannot
 * expire the session before `lastContact + sessionTimeout`. Ending the lease there is
 * therefore never later than the server's expiry, even if the process was paused between
 * the reply arriving and being read.
 *
 * | from                          | fact / time                                    | to                          |
 * |-------------------------------|------------------------------------------------|-----------------------------|
 * | CONNECTING                    | reply from session s                           | CONNECTED(s)                |
 * | CONNECTED, RECONNECTED        | silence ≥ 2/3·T                                | SUSPENDED(silent)           |
 * | CONNECTED, RECONNECTED        | socket dropped                                 | SUSPENDED(disconnected)     |
 * | SUSPENDED(s)                  | reply from s                                   | RECONNECTED(s, same)        |
 * | CONNECTED, RECONNECTED, SUSP. | silence ≥ T                                    | LOST(lease-expired)         |
 * | CONNECTED, RECONNECTED, SUSP. | server says EXPIRED                            | LOST(expired)               |
 * | LOST(s)                       | reply from a new session s' ≠ s                | RECONNECTED(s', new)        |
 * | any but CLOSED                | close()                                        | CLOSED                      |
 *
 * T is the negotiated session timeout; silence is `now − lastContact`.
 * Every other (status, fact) pair leaves the status unchanged.
 */
export interface LeaseTransition {
  readonly from: SessionStatus;
  readonly to: SessionStatus;
}

export class SessionLease {
  private current: SessionStatus = { kind: 'CONNECTING' };
  private lastContact = Number.NEGATIVE_INFINITY;
  private generation = 0;

  constructor(private timeoutMs: number) {
    assertTimeout(timeoutMs);
  }

  get status(): SessionStatus {
    return this.current;
  }

  get sessionTimeoutMs(): number {
    return this.timeoutMs;
  }

  /** Monotonic time the newest answered request was sent; -Infinity before the first. */
  get lastContactAt(): number {
    return this.lastContact;
  }

  /** The negotiated timeout can differ from the requested one; applies from now on. */
  setSessionTimeout(ms: number): void {
    assertTimeout(ms);
    this.timeoutMs = ms;
  }

  /** Milliseconds the session is still certainly alive at `now` (≤ 0: not at all). */
  remainingMs(now: number): number {
    if (
      this.current.kind === 'LOST' ||
      this.current.kind === 'CLOSED' ||
      this.current.kind === 'CONNECTING'
    ) {
      return 0;
    }
    return this.lastContact + this.timeoutMs - now;
  }

  /**
   * The server answered a request of session `sessionId` that was sent at `sentAt`
   * (monotonic). Replies of a session already declared LOST must not be passed in.
   */
  reply(sessionId: string, sentAt: number, now: number): LeaseTransition | undefined {
    const s = this.current;
    switch (s.kind) {
      case 'CLOSED':
        return undefined;
      case 'CONNECTING':
        this.lastContact = Math.max(this.lastContact, sentAt);
        this.generation += 1;
        return this.move({ kind: 'CONNECTED', sessionId, generation: this.generation }, now);
      case 'LOST':
        if (sessionId === s.sessionId) return undefined; // a late answer from the dead session
        this.lastContact = sentAt;
        this.generation += 1;
        return this.move(
          { kind: 'RECONNECTED', sessionId, generation: this.generation, newSession: true },
          now,
        );
      case 'SUSPENDED':
        if (sessionId !== s.sessionId) return undefined;
        this.lastContact = Math.max(this.lastContact, sentAt);
        // A reply to a request sent long ago proves little; only recover if that leaves a live lease.
        if (now - this.lastContact >= this.timeoutMs) return this.tick(now);
        if (s.reason === 'silent' && now - this.lastContact >= (this.timeoutMs * 2) / 3) return undefined;
        return this.move(
          { kind: 'RECONNECTED', sessionId, generation: s.generation, newSession: false },
          now,
        );
      case 'CONNECTED':
      case 'RECONNECTED':
        if (sessionId !== s.sessionId) return undefined;
        this.lastContact = Math.max(this.lastContact, sentAt);
        return undefined;
    }
  }

  /** The client library reports the socket dropped (it will try to reconnect the same session). */
  disconnected(now: number): LeaseTransition | undefined {
    const s = this.current;
    if (s.kind !== 'CONNECTED' && s.kind !== 'RECONNECTED') return undefined;
    return this.move(
      { kind: 'SUSPENDED', sessionId: s.sessionId, generation: s.generation, reason: 'disconnected' },
      now,
    );
  }

  /** The server said the session expired. */
  expired(now: number): LeaseTransition | undefined {
    const s = this.current;
    if (s.kind !== 'CONNECTED' && s.kind !== 'RECONNECTED' && s.kind !== 'SUSPENDED') return undefined;
    return this.move(
      { kind: 'LOST', sessionId: s.sessionId, generation: s.generation, reason: 'expired' },
      now,
    );
  }

  /** Applies the passage of time. Call at `nextCheckAt()` and whenever the caller needs a fresh answer. */
  tick(now: number): LeaseTransition | undefined {
    const s = this.current;
    if (s.kind !== 'CONNECTED' && s.kind !== 'RECONNECTED' && s.kind !== 'SUSPENDED') return undefined;
    const silence = now - this.lastContact;
    if (silence >= this.timeoutMs) {
      return this.move(
        { kind: 'LOST', sessionId: s.sessionId, generation: s.generation, reason: 'lease-expired' },
        now,
      );
    }
    if (s.kind !== 'SUSPENDED' && silence >= (this.timeoutMs * 2) / 3) {
      return this.move(
        { kind: 'SUSPENDED', sessionId: s.sessionId, generation: s.generation, reason: 'silent' },
        now,
      );
    }
    return undefined;
  }

  /** When `tick` would next change something, absent new facts (Infinity: never). */
  nextCheckAt(): number {
    const s = this.current;
    if (s.kind === 'SUSPENDED') return this.lastContact + this.timeoutMs;
    if (s.kind === 'CONNECTED' || s.kind === 'RECONNECTED')
      return this.lastContact + (this.timeoutMs * 2) / 3;
    return Number.POSITIVE_INFINITY;
  }

  close(now: number): LeaseTransition | undefined {
    if (this.current.kind === 'CLOSED') return undefined;
    return this.move({ kind: 'CLOSED' }, now);
  }

  private move(to: SessionStatus, _now: number): LeaseTransition {
    const from = this.current;
    this.current = to;
    return { from, to };
  }
}

function assertTimeout(ms: number): void {
  if (!Number.isFinite(ms) || ms <= 0) throw new RangeError(`session timeout must be > 0 ms, got ${ms}`);
}
