import type { Route } from '@sched/core';
import type { ApiNode } from './api-node.js';
import { pingDatabase } from './api-queries.js';

/**
 * Public probes. `/healthz` is liveness: the process answers HTTP. `/readyz` is readiness: 200
 * only when the registry lease is valid (this master may act) and PostgreSQL answers within
 * `dbTimeoutMs`; 503 otherwise, with the reasons.
 */
export function healthRoutes(node: ApiNode, opts: { dbTimeoutMs?: number } = {}): Route[] {
  const dbTimeoutMs = opts.dbTimeoutMs ?? 2_000;
  return [
    {
      method: 'GET',
      pattern: /^\/healthz$/,
      public: true,
      handle: () => ({ status: 200, body: { status: 'ok', key: node.key || null } }),
    },
    {
      method: 'GET',
      pattern: /^\/readyz$/,
      public: true,
      handle: async () => {
        const lease = node.leaseValid();
        let db = false;
        let dbError: string | undefined;
        let timer: NodeJS.Timeout | undefined;
        try {
          await Promise.race([
            pingDatabase(node.pool),
            new Promise((_, reject) => {
              timer = setTimeout(() => reject(new Error(`no answer within ${dbTimeoutMs} ms`)), dbTimeoutMs);
            }),
          ]);
          db = true;
        } catch (err) {
          dbError = (err as Error).message;
        } finally {
          clearTimeout(timer);
        }
        const ready = lease && db;
        const reasons = [
          ...(lease ? [] : ['the ZooKeeper lease is not valid (starting, suspended, lost or fenced)']),
          ...(db ? [] : [`PostgreSQL does not answer: ${dbError}`]),
        ];
        return {
          status: ready ? 200 : 503,
          body: { ready, key: node.key || null, lease, db, leader: node.isLeader, reasons },
        };
      },
    },
  ];
}
