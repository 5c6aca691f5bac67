import { parseDuration, SchedError } from '@sched/core';
import { FailoverRecords } from '@sched/registry';
import { z } from 'zod';
import { type ApiRoute, defineRoute, jsonResponse } from '../http/api-route.js';
import { errorSchema } from '../http/openapi.js';
import { type ApiDeps, registryOf } from './api-node.js';
import { clusterAnswerSchema, failoverPurgeSchema, failoverRecordSchema } from './api-schemas.js';
import { listFailoverRecords, readClusterStatus } from './cluster-status.js';

const starting = jsonResponse(errorSchema, 'STARTING: the master has no ZooKeeper session yet');

/** A duration such as `7d` or `36h`, in ms. */
const durationQuery = (fallback: string) =>
  z
    .string()
    .default(fallback)
    .transform((text, ctx) => {
      try {
        return parseDuration(text);
      } catch (err) {
        ctx.addIssue({
          code: 'custom',
          message: err instanceof SchedError ? err.message : `not a duration: ${text}`,
        });
        return z.NEVER;
      }
    })
    .describe(`a duration such as 7d, 36h, 90m (default ${fallback})`);

/** Cluster status and failover records (read from ZooKeeper by the master answering). */
export function clusterRoutes(deps: ApiDeps): ApiRoute[] {
  return [
    defineRoute({
      method: 'GET',
      url: '/v1/cluster',
      summary: 'Live masters (the leader marked) and workers, read from ZooKeeper',
      tags: ['cluster'],
      responses: { 200: jsonResponse(clusterAnswerSchema, 'the cluster'), 503: starting },
      handler: async () => {
        const { session, paths } = registryOf(deps.node);
        return {
          status: 200,
          body: { ...(await readClusterStatus(session, paths, deps.clock)), answeredBy: deps.node.key },
        };
      },
    }),
    defineRoute({
      method: 'GET',
      url: '/v1/failovers',
      summary: 'Failover records (FAILOVER_FINISH_NODES), oldest first',
      tags: ['cluster'],
      responses: { 200: jsonResponse(z.array(failoverRecordSchema), 'the records'), 503: starting },
      handler: async () => {
        const { session, paths } = registryOf(deps.node);
        return { status: 200, body: await listFailoverRecords(session, paths) };
      },
    }),
    defineRoute({
      method: 'DELETE',
      url: '/v1/failovers',
      summary: 'Purge failover records older than a duration',
      tags: ['cluster'],
      query: z.object({ olderThan: durationQuery('7d') }),
      responses: { 200: jsonResponse(failoverPurgeSchema, 'what was removed'), 503: starting },
      handler: async ({ query }) => {
        const { session, paths } = registryOf(deps.node);
        const olderThanMs = query.olderThan;
        const removed = await new FailoverRecords(
          session,
          paths,
          deps.clock ? { clock: deps.clock } : {},
        ).purge(olderThanMs);
        deps.logger.info({ removed, olderThanMs }, 'failover records purged');
        return { status: 200, body: { removed, olderThanMs } };
      },
    }),
  ];
}
