import { type Clock, grantedSessionTimeoutWarnings, type Logger, type SchedConfig } from '@sched/core';
import { RegistryPaths } from './registry-paths.js';
import { ensureSecureLayout } from './tree-acl.js';
import { ZkSession, type ZkSessionOptions } from './zk-session.js';

/** `ZkSession` options from sched's compiled configuration (`zk` section). */
export function zkSessionOptions(zk: SchedConfig['zk'], logger?: Logger): ZkSessionOptions {
  return {
    connectString: zk.connect,
    sessionTimeoutMs: zk.sessionTimeoutMs,
    requestTimeoutMs: zk.requestTimeoutMs,
    auth: zk.auth,
    logger,
  };
}

/** The znode layout for the configured root. */
export function registryPaths(zk: SchedConfig['zk']): RegistryPaths {
  return new RegistryPaths(zk.root);
}

/**
 * Logs, as warnings, what the daemon's operator must know when ZooKeeper grants a session timeout
 * other than `zk.sessionTimeout` (asked and granted, and whether `failover.delay` is still safe
 * for the granted one): now, for the current session, and again whenever a new session is granted
 * another. Returns the unsubscribe.
 */
export function warnOnGrantedSessionTimeout(
  session: ZkSession,
  config: SchedConfig,
  logger: Logger,
): () => void {
  const warn = (grantedMs: number) => {
    for (const w of grantedSessionTimeoutWarnings(config, grantedMs)) {
      logger.warn(
        { requestedMs: config.zk.sessionTimeoutMs, grantedMs },
        `ZooKeeper session timeout: ${w.path}: ${w.message}`,
      );
    }
  };
  warn(session.sessionTimeoutMs);
  return session.on('sessionTimeout', ({ grantedMs }) => warn(grantedMs));
}

/**
 * A daemon's way into the registry, the same for masters and workers: connect with the
 * configured credentials, warn when ZooKeeper grants another session timeout than asked, and lay
 * out the tree with its ACLs checked (`ensureSecureLayout`) before anything else is read or
 * created. Joining (`joinCluster`) comes after, once the daemon is ready to work.
 */
export async function connectRegistry(
  config: SchedConfig,
  opts: { clock?: Clock; logger: Logger; who: string },
): Promise<{ session: ZkSession; paths: RegistryPaths }> {
  const paths = registryPaths(config.zk);
  const session = await ZkSession.connect({
    ...zkSessionOptions(config.zk, opts.logger),
    ...(opts.clock ? { clock: opts.clock } : {}),
  });
  try {
    warnOnGrantedSessionTimeout(session, config, opts.logger);
    await ensureSecureLayout(session, paths, { logger: opts.logger, who: opts.who });
  } catch (err) {
    await session.close().catch(() => {});
    throw err;
  }
  return { session, paths };
}
