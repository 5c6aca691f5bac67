import { timing } from './timing.js';

export interface EventuallyOptions {
  /** Give up after this long (default `timing.forWaiting()`). */
  timeoutMs?: number;
  /** Pause between attempts (default 50 ms). */
  intervalMs?: number;
}

const attemptTimedOut = Symbol('attemptTimedOut');

/**
 * Calls `fn` until it returns without throwing (an assertion that holds), then returns its
 * value. On timeout it throws the last failure, so the test shows what was still wrong.
 * An attempt that never settles (a request to a server that will not answer) counts as
 * still failing at the deadline: `eventually` itself always ends within `timeoutMs`.
 */
export async function eventually<T>(fn: () => T | Promise<T>, opts: EventuallyOptions = {}): Promise<T> {
  const timeoutMs = opts.timeoutMs ?? timing.forWaiting();
  const intervalMs = opts.intervalMs ?? 50;
  const deadline = performance.now() + timeoutMs;
  let attempts = 0;
  let lastError: unknown;
  for (;;) {
    attempts += 1;
    let timer: NodeJS.Timeout | undefined;
    try {
      const attempt = Promise.resolve().then(fn);
      attempt.catch(() => undefined); // may settle after we gave up on it
      const outcome = await Promise.race([
        attempt,
        new Promise<typeof attemptTimedOut>((resolve) => {
          timer = setTimeout(() => resolve(attemptTimedOut), Math.max(0, deadline - performance.now()));
        }),
      ]);
      if (outcome !== attemptTimedOut) return outcome as T;
      lastError = new Error(`attempt ${attempts} did not settle before the deadline`, { cause: lastError });
    } catch (error) {
      lastError = error;
    } finally {
      clearTimeout(timer);
    }
    if (performance.now() + intervalMs > deadline) {
      const message = lastError instanceof Error ? lastError.message : String(lastError);
      throw new Error(`eventually: still failing after ${timeoutMs} ms (${attempts} attempts): ${message}`, {
        cause: lastError,
      });
    }
    await new Promise((resolve) => setTimeout(resolve, intervalMs));
  }
}
