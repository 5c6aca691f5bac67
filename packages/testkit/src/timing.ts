// Curator-style timing: every test timeout and pause derives from one base unit, so a slow
// machine scales them all at once (SCHED_TEST_TIMING_BASE=2000) instead of tests growing
// their own magic numbers.
//   base            1000 ms (env SCHED_TEST_TIMING_BASE)
//   forWaiting()    base × 10: the upper bound for "this must happen"; a passing test
//                   rarely waits that long, so it is generous for a busy 2-core machine
//   forSleeping()   base / 4: a short pause, e.g. a window in which nothing may happen
//   session()       base × 2: a ZooKeeper session timeout for fast expiry tests
//   multiple(n)     the same helpers with base × n

import { HarnessError } from './errors.js';

export interface Timing {
  readonly base: number;
  /** Upper bound for something that must happen (base × waiting multiple). */
  forWaiting(): number;
  /** A short pause (base / 4). */
  forSleeping(): number;
  /** A ZooKeeper session timeout suited to expiry tests (base × 2). */
  session(): number;
  /** The same helpers scaled by `n`. */
  multiple(n: number): Timing;
  /** Resolves after `ms` (default `forSleeping()`). */
  sleep(ms?: number): Promise<void>;
}

const waitingMultiple = 10;

export function makeTiming(base: number): Timing {
  if (!Number.isFinite(base) || base <= 0) {
    throw new HarnessError(
      'TESTKIT_INVALID_ARGUMENT',
      `timing base must be a positive number of milliseconds, got ${base}`,
    );
  }
  return {
    base,
    forWaiting: () => base * waitingMultiple,
    forSleeping: () => Math.max(1, Math.round(base / 4)),
    session: () => base * 2,
    multiple: (n: number) => makeTiming(base * n),
    sleep: (ms = Math.max(1, Math.round(base / 4))) => new Promise((resolve) => setTimeout(resolve, ms)),
  };
}

function baseFromEnv(): number {
  const raw = process.env.SCHED_TEST_TIMING_BASE;
  if (raw === undefined || raw === '') return 1000;
  const value = Number(raw);
  if (!Number.isFinite(value) || value <= 0) {
    throw new HarnessError(
      'TESTKIT_INVALID_ARGUMENT',
      `SCHED_TEST_TIMING_BASE must be a positive number of milliseconds, got '${raw}'`,
    );
  }
  return value;
}

export const timing: Timing = makeTiming(baseFromEnv());

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
