import type { SchedConfig } from './config-schema.js';
import { formatDuration } from './duration.js';
import type { Issue } from './errors.js';

/**
 * Settings that are each valid but unsafe together. These are warnings, not errors: an
 * operator may knowingly trade safety for speed (tests do), so daemons log them at start.
 */

/** Slack for one network round trip, scheduling delay and a GC pause. */
const FAILOVER_MARGIN_MS = 1_000;

/** Below this, a ZooKeeper digest password is warned about (its SHA-1 digest is in every znode's ACL). */
const MIN_ZK_PASSWORD_LENGTH = 16;

/**
 * The shortest failover delay that still guarantees a partitioned (zombie) node has killed
 * its tasks before they are re-run elsewhere (docs/design.md#failover-delay): the zombie notices the loss
 * at most one watchdog tick (a third of the session timeout) plus a round trip after the
 * server expired its session. Self-fencing kills task process groups with SIGKILL at once —
 * the kill grace is for timeouts and cancels, not for fencing — so it adds nothing here
 * (docs/decisions/0004-fencing-kill.md).
 */
export function minimumSafeFailoverDelayMs(
  config: Pick<SchedConfig, 'zk'>,
  sessionTimeoutMs = config.zk.sessionTimeoutMs,
): number {
  return Math.ceil(sessionTimeoutMs / 3) + FAILOVER_MARGIN_MS;
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
  const { db } = config;
  if (db.queryTimeoutMs > 0 && db.statementTimeoutMs > 0 && db.queryTimeoutMs <= db.statementTimeoutMs) {
    warnings.push({
      path: 'db.queryTimeout',
      message:
        `${formatDuration(db.queryTimeoutMs)} is not longer than db.statementTimeout (${formatDuration(db.statementTimeoutMs)}); ` +
        'a slow statement is given up by the client (its connection dropped) before PostgreSQL cancels it',
    });
  }
  if (
    db.lockTimeoutMs > 0 &&
    db.idleInTransactionTimeoutMs > 0 &&
    db.lockTimeoutMs <= db.idleInTransactionTimeoutMs
  ) {
    warnings.push({
      path: 'db.lockTimeout',
      message:
        `${formatDuration(db.lockTimeoutMs)} is not longer than db.idleInTransactionTimeout (${formatDuration(db.idleInTransactionTimeoutMs)}); ` +
        "a new leader stops waiting for a frozen leader's transaction before PostgreSQL ends it, and gives up its term",
    });
  }
  const { auth, insecure } = config.zk;
  const password = auth === undefined ? undefined : auth.slice(auth.indexOf(':') + 1);
  if (password !== undefined && password.length < MIN_ZK_PASSWORD_LENGTH) {
    warnings.push({
      path: 'zk.auth',
      message:
        `the password is shorter than ${MIN_ZK_PASSWORD_LENGTH} characters: it can be guessed by trying, or ` +
        "from the SHA-1 digest in a znode's ACL. Use 32 random characters or more",
    });
  }
  if (auth !== undefined && insecure) {
    warnings.push({
      path: 'zk.insecure',
      message: 'ignored: zk.auth is set, so the credentials are used and every znode gets a digest ACL',
    });
  }
  return warnings;
}

/**
 * What a daemon warns about once ZooKeeper has answered its session request: the server clamps
 * the requested `zk.sessionTimeout` into its [minSessionTimeout, maxSessionTimeout] (by default
 * 2 and 20 ticks), and the *granted* value is what expires sessions. sched times its lease and
 * the worker's task supervisor by the granted value (docs/design.md#session); the operator must
 * hear that it differs from the configured one, and whether the failover delay is still safe for
 * it. Nothing when the server granted what was asked.
 */
export function grantedSessionTimeoutWarnings(config: SchedConfig, grantedMs: number): Issue[] {
  const requestedMs = config.zk.sessionTimeoutMs;
  if (grantedMs === requestedMs) return [];
  const warnings: Issue[] = [
    {
      path: 'zk.sessionTimeout',
      message:
        `requested ${formatDuration(requestedMs)}, but ZooKeeper granted ${formatDuration(grantedMs)} ` +
        "(the server's minSessionTimeout/maxSessionTimeout); the session lease and the task supervisor " +
        `use ${formatDuration(grantedMs)}. Set zk.sessionTimeout within the server's bounds`,
    },
  ];
  const minimum = minimumSafeFailoverDelayMs(config, grantedMs);
  if (config.failover.delayMs < minimum) {
    warnings.push({
      path: 'failover.delay',
      message:
        `${formatDuration(config.failover.delayMs)} is shorter than a third of the granted session timeout ` +
        `(${formatDuration(Math.ceil(grantedMs / 3))}) + ${formatDuration(FAILOVER_MARGIN_MS)}; ` +
        `a partitioned worker's task may still be running when it is re-run elsewhere. ` +
        `Safe: at least ${formatDuration(minimum)}`,
    });
  }
  return warnings;
}
