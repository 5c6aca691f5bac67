/**
 * Timers, injected next to the `Clock` so the watchdog and the lease can be driven by a fake
 * clock in unit tests. The system implementation unrefs nothing: a live session is supposed
 * to keep the process alive until it is closed.
 */
export interface TimerHandle {
  readonly _timer: unknown;
}

export interface Timers {
  setTimeout(fn: () => void, ms: number): TimerHandle;
  clearTimeout(handle: TimerHandle | undefined): void;
}

export const systemTimers: Timers = {
  setTimeout(fn, ms) {
    return { _timer: setTimeout(fn, Math.max(0, ms)) };
  },
  clearTimeout(handle) {
    if (handle) clearTimeout(handle._timer as NodeJS.Timeout);
  },
};
