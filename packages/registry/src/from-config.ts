import type { Logger, SchedConfig } from '@sched/core';
import { RegistryPaths } from './registry-paths.js';
import type { ZkSessionOptions } from './zk-session.js';

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
