import type { RegistryPaths } from './registry-paths.js';
import type { ZkSession } from './zk-session.js';

/**
 * Creates the persistent parents of sched's layout (root, masters, workers, election, locks,
 * failover-finish-nodes/{master,worker}) if missing, with the session's ACLs. Idempotent.
 */
export async function ensureLayout(session: ZkSession, paths: RegistryPaths): Promise<void> {
  for (const p of paths.parents) await session.mkdirp(p);
}
