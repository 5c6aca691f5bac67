import { timing } from './timing.js';

export interface EventuallyOptions {
  /** Give up after this long (default `timing.forWaiting()`). */
  timeoutMs?: number;
  /** Pause between attempts (default 50 ms). */
  intervalMs?: number;
}

/**
 * Calls `fn` until it returns without throwing (an assertion that holds), then returns its
 * value. On timeout it throws the last failure, so the test shows what was still wrong.
 */
export async function eventually<T>(fn: () => T | Promise<T>, opts: EventuallyOptions = {}): Promise<T> {
  const timeoutMs = opts.timeoutMs ?? timing.forWaiting();
  const intervalMs = opts.intervalMs ?? 50;
  const deadline = performance.now() + timeoutMs;
  let attempts = 0;
  for (;;) {
    attempts += 1;
    try {
      return await fn();
    } catch (error) {
      if (performance.now() + intervalMs > deadline) {
        const message = error instanceof Error ? error.message : String(error);
        throw new Error(
          `eventually: still failing after ${timeoutMs} ms (${attempts} attempts): ${message}`,
          {
            cause: error,
          },
        );
      }
    }
    await new Promise((resolve) => setTimeout(resolve, intervalMs));
  }
}
