/**
 * A one-slot wake-up signal for loops that wait on "something changed" (a watch fired, the
 * session status changed): `wait()` resolves at the next `wake()` after it was called, or at
 * once if a `wake()` happened since the last `wait()` returned.
 */
export class Wakeup {
  private pending = false;
  private resolve: (() => void) | undefined;

  wake(): void {
    if (this.resolve) {
      const r = this.resolve;
      this.resolve = undefined;
      r();
    } else {
      this.pending = true;
    }
  }

  /** Clears a pending wake-up so that `wait()` waits for a new one. */
  reset(): void {
    this.pending = false;
  }

  wait(timeoutMs?: number): Promise<boolean> {
    if (this.pending) {
      this.pending = false;
      return Promise.resolve(true);
    }
    return new Promise((resolve) => {
      let timer: NodeJS.Timeout | undefined;
      this.resolve = () => {
        if (timer) clearTimeout(timer);
        resolve(true);
      };
      if (timeoutMs !== undefined && Number.isFinite(timeoutMs)) {
        timer = setTimeout(
          () => {
            this.resolve = undefined;
            resolve(false);
          },
          Math.max(0, timeoutMs),
        );
      }
    });
  }
}
