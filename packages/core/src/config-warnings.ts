import type { SchedConfig } from './config-schema.js';
import { formatDuration } from './duration.js';
import type { Issue } from './errors.js';

/**
 * Settings that are each valid but unsafe together. These are warnings, not errors: an
 * operator may knowingly trade safety for speed (tests do), so daemons log them at start.
 */

/** Slack for one network round trip, scheduling delay and a GC pause. */
const FAILOVER_MARGIN_MS = 1_000;

/**
 * The shortest failover delay that still guarantees a partitioned (zombie) node has killed
 * its tasks before they are re-run elsewhere (docs/design.md#failover-delay): the zombie notices the loss
 * at most one watchdog tick (a third of the session timeout) plus a round trip after the
 * server expired its session. Self-fencing kills task process groups with SIGKILL at once —
 * the kill grace is for timeouts and cancels, not for fencing — so it adds nothing here
 * (docs/decisions/0004-fencing-kill.md).
 */
export function minimumSafeFailoverDelayMs(config: Pick<SchedConfig, 'zk'>): number {
  return Math.ceil(config.zk.sessionTimeoutMs / 3) + FAILOVER_MARGIN_MS;
}

export function configWarnings(config: SchedConfig): Issue[] {
  const warnings: Issue[] = [];
  const minimum = minimumSafeFailoverDelayMs(config);
  if (config.failover.delayMs < minimum) {
    warnings.push({
      path: 'failover.delay',
      message:
        `${formatDuration(config.failover.delayMs)} is shorter than a third of zk.sessionTimeout ` +
        `(${formatDuration(Math.ceil(config.zk.sessionTimeoutMs / 3))}) + ${formatDuration(FAILOVER_MARGIN_MS)}; ` +
        `a partitioned worker's task may still be running when it is re-run elsewhere. ` +
        `Safe: at least ${formatDuration(minimum)}`,
    });
  }
  return warnings;
}
