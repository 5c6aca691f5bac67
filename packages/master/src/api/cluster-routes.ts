import { parseDuration, type Route, SchedError } from '@sched/core';
import { FailoverRecords } from '@sched/registry';
import { type ApiDeps, badRequest, registryOf } from './api-node.js';
import { listFailoverRecords, readClusterStatus } from './cluster-status.js';

/** Cluster status and failover records (read from ZooKeeper by the master answering). */
export function clusterRoutes(deps: ApiDeps): Route[] {
  return [
    {
      method: 'GET',
      pattern: /^\/v1\/cluster$/,
      handle: async () => {
        const { session, paths } = registryOf(deps.node);
        return {
          status: 200,
          body: { ...(await readClusterStatus(session, paths, deps.clock)), answeredBy: deps.node.key },
        };
      },
    },
    {
      method: 'GET',
      pattern: /^\/v1\/failovers$/,
      handle: async () => {
        const { session, paths } = registryOf(deps.node);
        return { status: 200, body: await listFailoverRecords(session, paths) };
      },
    },
    {
      method: 'DELETE',
      pattern: /^\/v1\/failovers$/,
      handle: async (ctx) => {
        const { session, paths } = registryOf(deps.node);
        const text = ctx.query.get('olderThan') ?? '7d';
        let olderThanMs: number;
        try {
          olderThanMs = parseDuration(text, 'olderThan');
        } catch (err) {
          throw badRequest('olderThan', err instanceof SchedError ? err.message : `not a duration: ${text}`);
        }
        const removed = await new FailoverRecords(
          session,
          paths,
          deps.clock ? { clock: deps.clock } : {},
        ).purge(olderThanMs);
        deps.logger.info({ removed, olderThanMs }, 'failover records purged');
        return { status: 200, body: { removed, olderThanMs } };
      },
    },
  ];
}
