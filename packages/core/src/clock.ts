import { performance } from 'node:perf_hooks';

/**
 * Time, injected. `now()` is wall-clock epoch ms: for what users read and for fire times.
 * `monotonic()` only ever moves forward at real speed and ignores wall-clock jumps (NTP,
 * an operator changing the date): use it for leases, timeouts and intervals.
 */
export interface Clock {
  /** Wall-clock time, epoch milliseconds. */
  now(): number;
  /** Monotonic milliseconds from an arbitrary origin; only differences are meaningful. */
  monotonic(): number;
}

export const systemClock: Clock = {
  now: () => Date.now(),
  monotonic: () => performance.now(),
};

/**
 * A clock that moves only when told to, for unit tests. `advance` moves wall and monotonic
 * time together; `setNow` jumps the wall clock alone (either way), as NTP or an operator can,
 * leaving monotonic time untouched.
 */
export class FakeClock implements Clock {
  private wall: number;
  private mono: number;

  constructor(opts: { now?: number; monotonic?: number } = {}) {
    this.wall = opts.now ?? Date.UTC(2024, 0, 1);
    this.mono = opts.monotonic ?? 0;
  }

  now(): number {
    return this.wall;
  }

  monotonic(): number {
    return this.mono;
  }

  advance(ms: number): void {
    if (!Number.isFinite(ms) || ms < 0) throw new RangeError(`FakeClock.advance: ms must be >= 0, got ${ms}`);
    this.wall += ms;
    this.mono += ms;
  }

  setNow(ms: number): void {
    this.wall = ms;
  }
}

/** Resolves after `ms` real milliseconds. */
export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
