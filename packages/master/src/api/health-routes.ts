import { type ApiRoute, defineRoute, jsonResponse } from '../http/api-route.js';
import type { ApiNode } from './api-node.js';
import { pingDatabase } from './api-queries.js';
import { healthSchema, readinessSchema } from './api-schemas.js';

/**
 * Public probes. `/healthz` is liveness: the process answers HTTP. `/readyz` is readiness: 200
 * only when the registry lease is valid (this master may act) and PostgreSQL answers within
 * `dbTimeoutMs`; 503 otherwise, with the reasons.
 */
export function healthRoutes(node: ApiNode, opts: { dbTimeoutMs?: number } = {}): ApiRoute[] {
  const dbTimeoutMs = opts.dbTimeoutMs ?? 2_000;
  return [
    defineRoute({
      method: 'GET',
      url: '/healthz',
      summary: 'Liveness: the process answers HTTP',
      tags: ['probes'],
      public: true,
      accessLog: 'debug',
      responses: { 200: jsonResponse(healthSchema, 'alive') },
      handler: () => ({ status: 200, body: { status: 'ok', key: node.key || null } }),
    }),
    defineRoute({
      method: 'GET',
      url: '/readyz',
      summary: 'Readiness: the ZooKeeper lease is valid and PostgreSQL answers',
      tags: ['probes'],
      public: true,
      accessLog: 'debug',
      responses: {
        200: jsonResponse(readinessSchema, 'ready'),
        503: jsonResponse(readinessSchema, 'not ready; `reasons` says why'),
      },
      handler: async () => {
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
    }),
  ];
}
