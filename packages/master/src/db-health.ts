import { type Clock, type Logger, systemClock, withDefaults } from '@sched/core';
import type { Db } from '@sched/store';

/**
 * Whether this master reaches PostgreSQL, probed every second (`SELECT 1`, bounded), and the
 * degrade rule for a master cut from it (docs/operations.md#degraded-operation):
 *
 * - the state goes into the master's heartbeat (`db: up | down`), so `sched-ctl cluster status`
 *   shows it and the other masters know it; a change is logged once (down, then up again with
 *   how long it lasted), not once per failed query;
 * - a master that has been down for `stepOutAfterMs` while, all that time, another live master
 *   said `up`, steps out (`onStepOut`): it cannot fire its schedules or drive its runs, and the others can, once
 *   it is failed over. When every master is down (PostgreSQL itself is down), nobody steps out:
 *   nobody could do better, and everyone resumes when it is back.
 */
export interface DbHealthOptions {
  pool: Db;
  /** Down this long (and another master up) → step out; 0 = never. */
  stepOutAfterMs: number;
  /** Whether another live master reports `db: up` in its heartbeat. */
  anotherMasterReachesDb: () => boolean;
  onStepOut: (downForMs: number) => void;
  /** Called on every change (the heartbeat is refreshed then). */
  onChange?: (up: boolean) => void;
  logger: Logger;
  clock?: Clock;
  /** @defaultValue 1000 */
  intervalMs?: number;
  /** A probe not answered within this is a failure. @defaultValue 2000 */
  probeTimeoutMs?: number;
}

export const DEFAULT_DB_HEALTH_OPTIONS = {
  intervalMs: 1000,
  probeTimeoutMs: 2000,
} as const satisfies Required<Pick<DbHealthOptions, 'intervalMs' | 'probeTimeoutMs'>>;

export class DbHealth {
  private readonly opts: ReturnType<typeof withDefaults<DbHealthOptions, typeof DEFAULT_DB_HEALTH_OPTIONS>>;
  private readonly clock: Clock;
  private timer: NodeJS.Timeout | undefined;
  private running = false;
  /** Monotonic ms of the first failed probe of this outage; null while PostgreSQL answers. */
  private downSinceMs: number | null = null;
  /**
   * Monotonic ms since which every failed probe has seen another master up: a master steps out
   * only after `stepOutAfterMs` of *both*, so after an outage of everyone, a master that recovers
   * a moment later than the others does not step out for the whole outage's length.
   */
  private othersUpSinceMs: number | null = null;
  private lastError = '';
  private steppedOut = false;

  constructor(opts: DbHealthOptions) {
    this.opts = withDefaults(opts, DEFAULT_DB_HEALTH_OPTIONS);
    this.clock = opts.clock ?? systemClock;
  }

  /** Whether the last probe answered. */
  get up(): boolean {
    return this.downSinceMs === null;
  }

  start(): void {
    if (this.running) return;
    this.running = true;
    const loop = async () => {
      if (!this.running) return;
      await this.probe();
      if (this.running) this.timer = setTimeout(loop, this.opts.intervalMs);
    };
    this.timer = setTimeout(loop, this.opts.intervalMs);
  }

  stop(): void {
    this.running = false;
    clearTimeout(this.timer);
  }

  /** One probe and its consequences (exposed for tests). */
  async probe(): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    try {
      await Promise.race([
        this.opts.pool.query('SELECT 1'),
        new Promise((_, reject) => {
          timer = setTimeout(
            () => reject(new Error(`no answer within ${this.opts.probeTimeoutMs} ms`)),
            this.opts.probeTimeoutMs,
          );
        }),
      ]);
      this.reachable();
    } catch (err) {
      this.unreachable((err as Error).message);
    } finally {
      clearTimeout(timer);
    }
  }

  private reachable(): void {
    if (this.downSinceMs === null) return;
    const downForMs = this.clock.monotonic() - this.downSinceMs;
    this.downSinceMs = null;
    this.othersUpSinceMs = null;
    this.opts.logger.warn(
      { downForMs },
      `PostgreSQL answers again after ${Math.round(downForMs / 100) / 10} s`,
    );
    this.opts.onChange?.(true);
  }

  private unreachable(message: string): void {
    const now = this.clock.monotonic();
    if (this.downSinceMs === null) {
      this.downSinceMs = now;
      this.lastError = message;
      this.opts.logger.error(
        { error: message },
        'PostgreSQL does not answer: schedules of this master do not fire and its runs wait until it does',
      );
      this.opts.onChange?.(false);
      return;
    }
    this.lastError = message;
    const downForMs = now - this.downSinceMs;
    const { stepOutAfterMs } = this.opts;
    if (!this.opts.anotherMasterReachesDb()) {
      this.othersUpSinceMs = null;
      return;
    }
    this.othersUpSinceMs ??= now;
    const aloneForMs = now - Math.max(this.downSinceMs, this.othersUpSinceMs);
    if (this.steppedOut || stepOutAfterMs <= 0 || aloneForMs < stepOutAfterMs) return;
    this.steppedOut = true;
    this.opts.logger.error(
      { downForMs, error: this.lastError },
      `PostgreSQL has not answered for ${Math.round(downForMs / 1000)} s while another master reaches it: stepping out so the other masters take over this master's schedules and runs`,
    );
    this.opts.onStepOut(downForMs);
  }
}
