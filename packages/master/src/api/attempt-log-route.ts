import { request as httpRequest, type IncomingMessage } from 'node:http';
import { dialAddress, HttpError, type Route } from '@sched/core';
import { getAttempt } from '@sched/store';
import { type ApiDeps, idParam } from './api-node.js';

/**
 * `GET /v1/attempts/:id/log?follow=true|false`: the task's output as text/plain. The master proxies
 * the stream of the worker that ran the attempt (`GET /v1/attempts/:id/log` on the worker, same
 * secret); when that worker is gone, does not know the attempt any more or does not answer
 * within `connectTimeoutMs`, it answers with the log tail stored in PostgreSQL when the attempt
 * ended. `X-Log-Source: worker | database` says which.
 */
export function attemptLogRoute(deps: ApiDeps, opts: { connectTimeoutMs?: number } = {}): Route {
  const connectTimeoutMs = opts.connectTimeoutMs ?? 3_000;
  return {
    method: 'GET',
    pattern: /^\/v1\/attempts\/([^/]+)\/log$/,
    handle: async (ctx) => {
      const id = idParam(ctx.params[0], 'attempt id');
      const followText = ctx.query.get('follow') ?? 'false';
      if (followText !== 'true' && followText !== 'false') {
        throw new HttpError(
          400,
          'REQUEST_INVALID',
          `follow: expected true or false, got ${JSON.stringify(followText)}`,
        );
      }
      const attempt = await getAttempt(deps.node.pool, id);
      if (!attempt) throw new HttpError(404, 'NOT_FOUND', `no task attempt with id ${id}`);
      const { res } = ctx;
      if (attempt.workerAddress) {
        const upstream = await openWorkerLog(
          dialAddress(deps.peerMap, attempt.workerAddress),
          id,
          followText === 'true',
          deps.secret,
          connectTimeoutMs,
        ).catch(() => null);
        if (upstream && upstream.statusCode === 200) {
          res.writeHead(200, {
            'Content-Type': 'text/plain; charset=utf-8',
            'X-Log-Source': 'worker',
            'X-Attempt-State': attempt.state,
          });
          // The client going away ends the upstream follow; the upstream ending ends ours.
          res.once('close', () => upstream.destroy());
          upstream.on('error', () => res.destroy());
          upstream.pipe(res);
          return undefined;
        }
        upstream?.resume();
      }
      const tail = attempt.logTail ?? '';
      res.writeHead(200, {
        'Content-Type': 'text/plain; charset=utf-8',
        'Content-Length': String(Buffer.byteLength(tail)),
        'X-Log-Source': 'database',
        'X-Attempt-State': attempt.state,
      });
      res.end(tail);
      return undefined;
    },
  };
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
