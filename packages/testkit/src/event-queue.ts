// An async queue of observed events (connection states, leadership changes, watcher
// firings) for asserting exact sequences, Curator style: everything a component reports is
// pushed here, then the test takes events one by one with a deadline and finally asserts
// a quiet period in which nothing else happened.

import { inspect, isDeepStrictEqual } from 'node:util';
import { timing } from './timing.js';

export class EventQueue<T> {
  private readonly buffered: T[] = [];
  private readonly waiters: ((event: T) => void)[] = [];
  /** Every event ever pushed, for failure messages. */
  private readonly history: T[] = [];

  /** Records an event; hand `queue.push` (bound) to any callback. */
  readonly push = (event: T): void => {
    this.history.push(event);
    const waiter = this.waiters.shift();
    if (waiter) waiter(event);
    else this.buffered.push(event);
  };

  /** Events received but not yet taken. */
  pending(): readonly T[] {
    return [...this.buffered];
  }

  /** Takes the next event, waiting up to `timeoutMs` (default `timing.forWaiting()`). */
  next(timeoutMs = timing.forWaiting()): Promise<T> {
    if (this.buffered.length > 0) return Promise.resolve(this.buffered.shift() as T);
    return new Promise<T>((resolve, reject) => {
      const waiter = (event: T): void => {
        clearTimeout(timer);
        resolve(event);
      };
      const timer = setTimeout(() => {
        const index = this.waiters.indexOf(waiter);
        if (index >= 0) this.waiters.splice(index, 1);
        reject(
          new Error(`EventQueue: no event within ${timeoutMs} ms; events so far: ${show(this.history)}`),
        );
      }, timeoutMs);
      this.waiters.push(waiter);
    });
  }

  /**
   * Asserts that the next events are exactly `expected`, in order (deep equality). Each event
   * may take up to `timeoutMs` to arrive. Does not assert that nothing follows: chain
   * `expectQuiet` for that.
   */
  async expectSequence(expected: readonly T[], timeoutMs = timing.forWaiting()): Promise<void> {
    const seen: T[] = [];
    for (const [index, want] of expected.entries()) {
      let got: T;
      try {
        got = await this.next(timeoutMs);
      } catch {
        throw new Error(
          `EventQueue: expected ${show(expected)}; got only ${show(seen)} (event #${index + 1}, ${show([want])}, did not arrive within ${timeoutMs} ms)`,
        );
      }
      seen.push(got);
      if (!isDeepStrictEqual(got, want)) {
        throw new Error(
          `EventQueue: expected ${show(expected)}; got ${show(seen)}… (event #${index + 1} was ${show([got])}, expected ${show([want])})`,
        );
      }
    }
  }

  /** Asserts that no event is pending now nor arrives within `ms`. */
  async expectQuiet(ms = timing.forSleeping()): Promise<void> {
    if (this.buffered.length === 0) await new Promise((resolve) => setTimeout(resolve, ms));
    if (this.buffered.length > 0) {
      const unexpected = this.buffered.splice(0);
      throw new Error(`EventQueue: expected no events for ${ms} ms, got ${show(unexpected)}`);
    }
  }
}

function show(events: readonly unknown[]): string {
  return `[${events.map((e) => inspect(e, { depth: 4, breakLength: Number.POSITIVE_INFINITY })).join(', ')}]`;
}
