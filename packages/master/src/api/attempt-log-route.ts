import { request as httpRequest, type IncomingMessage } from 'node:http';
import { dialAddress, HttpError } from '@sched/core';
import { getAttempt } from '@sched/store';
import { z } from 'zod';
import { type ApiRoute, defineRoute, jsonResponse, textResponse } from '../http/api-route.js';
import { errorSchema } from '../http/openapi.js';
import type { ApiDeps } from './api-node.js';
import { idParam, queryBoolean } from './api-schemas.js';

/**
 * `GET /v1/attempts/:id/log?follow=true|false`: the task's output as text/plain. The master proxies
 * the stream of the worker that ran the attempt (`GET /v1/attempts/:id/log` on the worker, same
 * secret); when that worker is gone, does not know the attempt any more or does not answer
 * within `connectTimeoutMs`, it answers with the log tail stored in PostgreSQL when the attempt
 * ended. `X-Log-Source: worker | database` says which.
 */
export function attemptLogRoute(deps: ApiDeps, opts: { connectTimeoutMs?: number } = {}): ApiRoute {
  const connectTimeoutMs = opts.connectTimeoutMs ?? 3_000;
  return defineRoute({
    method: 'GET',
    url: '/v1/attempts/:id/log',
    summary: 'A task attempt\u2019s output, followed live or as stored',
    description:
      'Proxied from the worker that ran the attempt; from the log tail stored in PostgreSQL when that worker is gone. `X-Log-Source: worker | database` says which.',
    tags: ['runs'],
    params: z.object({ id: idParam('attempt id') }),
    query: z.object({ follow: queryBoolean('keep the stream open while the task runs').optional() }),
    responses: {
      200: textResponse('text/plain', 'the output'),
      404: jsonResponse(errorSchema, 'NOT_FOUND: no attempt with that id'),
    },
    handler: async ({ params, query }, reply) => {
      const { id } = params;
      const attempt = await getAttempt(deps.node.pool, id);
      if (!attempt) throw new HttpError(404, 'NOT_FOUND', `no task attempt with id ${id}`);
      if (attempt.workerAddress) {
        const upstream = await openWorkerLog(
          dialAddress(deps.peerMap, attempt.workerAddress),
          id,
          query.follow ?? false,
          deps.secret,
          connectTimeoutMs,
        ).catch(() => null);
        if (upstream && upstream.statusCode === 200) {
          // Fastify pipes the stream and destroys it when the client goes away.
          return reply
            .code(200)
            .type('text/plain; charset=utf-8')
            .header('X-Log-Source', 'worker')
            .header('X-Attempt-State', attempt.state)
            .send(upstream);
        }
        upstream?.resume();
      }
      return reply
        .code(200)
        .type('text/plain; charset=utf-8')
        .header('X-Log-Source', 'database')
        .header('X-Attempt-State', attempt.state)
        .send(attempt.logTail ?? '');
    },
  });
}

function openWorkerLog(
  address: string,
  attemptId: number,
  follow: boolean,
  secret: string,
  timeoutMs: number,
): Promise<IncomingMessage> {
  const [host, port] = splitAddress(address);
  return new Promise((resolve, reject) => {
    const req = httpRequest({
      host,
      port,
      method: 'GET',
      path: `/v1/attempts/${attemptId}/log?follow=${follow}`,
      headers: { Authorization: `Bearer ${secret}` },
      agent: false,
    });
    // Bounded wait for the response head only; a followed stream may then last as long as the task.
    const timer = setTimeout(
      () => req.destroy(new Error(`worker ${address} did not answer within ${timeoutMs} ms`)),
      timeoutMs,
    );
    req.once('response', (res) => {
      clearTimeout(timer);
      resolve(res);
    });
    req.once('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    req.end();
  });
}

function splitAddress(address: string): [string, number] {
  const i = address.lastIndexOf(':');
  return [address.slice(0, i), Number(address.slice(i + 1))];
}
