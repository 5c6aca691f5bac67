import type { FakeClock } from '@sched/core';
import type { TimerHandle, Timers } from '../../src/timers.js';

/** Timers driven by a FakeClock: `advance(ms)` moves the clock and fires what falls due, in order. */
export class ManualTimers implements Timers {
  private readonly pending = new Map<number, { at: number; fn: () => void }>();
  private nextId = 1;

  constructor(private readonly clock: FakeClock) {}

  setTimeout(fn: () => void, ms: number): TimerHandle {
    const id = this.nextId++;
    this.pending.set(id, { at: this.clock.monotonic() + Math.max(0, ms), fn });
    return { _timer: id };
  }

  clearTimeout(handle: TimerHandle | undefined): void {
    if (handle) this.pending.delete(handle._timer as number);
  }

  /** Moves time forward by `ms`, firing due timers at their own instants. */
  advance(ms: number): void {
    const end = this.clock.monotonic() + ms;
    for (;;) {
      let nextId: number | undefined;
      let nextAt = Number.POSITIVE_INFINITY;
      for (const [id, t] of this.pending) {
        if (t.at <= end && (t.at < nextAt || (t.at === nextAt && id < (nextId ?? Infinity)))) {
          nextAt = t.at;
          nextId = id;
        }
      }
      if (nextId === undefined) break;
      const timer = this.pending.get(nextId);
      this.pending.delete(nextId);
      if (nextAt > this.clock.monotonic()) this.clock.advance(nextAt - this.clock.monotonic());
      timer?.fn();
    }
    if (end > this.clock.monotonic()) this.clock.advance(end - this.clock.monotonic());
  }

  get size(): number {
    return this.pending.size;
  }
}
