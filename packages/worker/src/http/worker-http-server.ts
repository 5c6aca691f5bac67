import type { IncomingMessage, ServerResponse } from 'node:http';
import { HttpError, JsonHttpServer, type Logger, type RequestContext, type Route } from '@sched/core';
import {
  type AttemptRequest,
  ID_PATTERN,
  InvalidRequestError,
  PROTOCOL_HEADER,
  parseAttemptRequest,
  parseRevokeRequest,
  protocolMismatch,
  type RevokeRequest,
  WireError,
} from '@sched/protocol';
import { AttemptRevokedError, WorkerAtCapacityError, WorkerDrainingError } from '../executor/errors.js';
import type { TaskExecutor } from '../executor/task-executor.js';
import type { LogStore } from '../logs/log-store.js';

export interface WorkerHttpServerOptions {
  executor: TaskExecutor;
  logs: LogStore;
  /** The cluster secret; requests must carry `Authorization: Bearer <secret>`. */
  secret: string;
  /**
   * This worker's incarnation key once known; a dispatch addressed to another incarnation is
   * refused, and so is a revoke addressed to any incarnation but this one.
   */
  nodeKey?: () => string | null;
  /**
   * This worker's current registration (the czxid of its registration znode, in decimal) once
   * registered; a dispatch addressed to another registration of this incarnation is refused
   * (409 `WRONG_REGISTRATION`): the leader's failover of that registration takes its attempts over.
   */
  registration?: () => string | null;
  /** Extra fields for `GET /v1/health` (state, groups…). */
  health?: () => Record<string, unknown>;
  /**
   * GET endpoints served WITHOUT authentication, by exact path (e.g. `/metrics` for a Prometheus
   * scraper). Nothing else is public. @defaultValue none
   */
  publicGet?: Record<string, (req: IncomingMessage, res: ServerResponse) => void | Promise<void>>;
  /** Largest accepted request body. @defaultValue 4 MiB */
  maxBodyBytes?: number;
  /** Most attempts in one batch dispatch, and in one revoke. @defaultValue 1000 */
  maxBatch?: number;
  logger?: Logger;
}

export const DEFAULT_WORKER_HTTP_SERVER_OPTIONS = { maxBatch: 1000 } as const satisfies Required<
  Pick<WorkerHttpServerOptions, 'maxBatch'>
>;

/**
 * The worker's side of the master↔worker transport (docs/transport.md): HTTP/1.1 keep-alive with
 * JSON bodies, on the JSON HTTP server shared with the master (`@sched/core`: authentication with
 * the cluster secret, body limits, clear 4xx answers for anything malformed, oversized or
 * unauthenticated). Nothing that fails those checks reaches the executor.
 *
 * | route                               | what                                         |
 * |-------------------------------------|----------------------------------------------|
 * | GET  /v1/health                     | running/capacity/draining and node state     |
 * | POST /v1/attempts                   | dispatch one attempt (idempotent on its id)  |
 * | POST /v1/attempts/batch             | dispatch many; a malformed item refuses all  |
 * | POST /v1/attempts/revoke            | never start these dispatches (answer lost)   |
 * | GET  /v1/attempts/{id}[?worker=KEY]  | the attempt's snapshot (409 if KEY ≠ this)   |
 * | POST /v1/attempts/{id}/cancel       | kill it (SIGTERM, grace, SIGKILL)            |
 * | GET  /v1/attempts/{id}/log          | its log; `follow=true` streams until it ends |
 */
export class WorkerHttpServer {
  private readonly server: JsonHttpServer;
  private readonly maxBatch: number;

  constructor(private readonly opts: WorkerHttpServerOptions) {
    this.maxBatch = opts.maxBatch ?? DEFAULT_WORKER_HTTP_SERVER_OPTIONS.maxBatch;
    // `batch` and `revoke` are routes of their own, never attempt ids.
    const attempt = (suffix: string) => new RegExp(`^/v1/attempts/(?!(?:batch|revoke)$)([^/]+)${suffix}$`);
    const routes: Route[] = [
      ...Object.entries(opts.publicGet ?? {}).map(
        ([path, serve]): Route => ({
          method: 'GET',
          pattern: new RegExp(`^${path.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}$`),
          public: true,
          handle: async (ctx) => {
            await serve(ctx.req, ctx.res);
            return undefined;
          },
        }),
      ),
      { method: 'GET', pattern: /^\/v1\/health$/, handle: () => ({ status: 200, body: this.health() }) },
      {
        method: 'POST',
        pattern: /^\/v1\/attempts$/,
        handle: async (ctx) => this.dispatchOne(await fromMaster(ctx)),
      },
      {
        method: 'POST',
        pattern: /^\/v1\/attempts\/batch$/,
        handle: async (ctx) => this.dispatchBatch(await fromMaster(ctx)),
      },
      {
        method: 'POST',
        pattern: /^\/v1\/attempts\/revoke$/,
        handle: async (ctx) => this.revoke(await fromMaster(ctx)),
      },
      {
        method: 'GET',
        pattern: attempt(''),
        handle: (ctx) => {
          const id = attemptIdOf(ctx);
          // `?worker=KEY`: the asker (a master reconciling the attempt) means this incarnation
          // only; another one's "not known" would make it think the attempt was lost.
          const expected = ctx.query.get('worker');
          const nodeKey = this.opts.nodeKey?.() ?? null;
          if (expected !== null && expected !== nodeKey) {
            throw new HttpError(
              409,
              WireError.WrongIncarnation,
              nodeKey === null
                ? `attempt ${id} was asked of ${expected}, but this worker does not know its incarnation key yet`
                : `attempt ${id} was asked of ${expected}, but this worker is ${nodeKey}`,
            );
          }
          const snapshot = this.opts.executor.snapshot(id);
          if (!snapshot)
            throw new HttpError(404, WireError.NotFound, `attempt ${id} is not known on this worker`);
          return { status: 200, body: snapshot };
        },
      },
      {
        method: 'POST',
        pattern: attempt('/cancel'),
        handle: async (ctx) => this.cancel(attemptIdOf(ctx), await fromMaster(ctx, { optional: true })),
      },
      {
        method: 'GET',
        pattern: attempt('/log'),
        handle: async (ctx) => {
          await this.streamLog(attemptIdOf(ctx), ctx.query, ctx.req, ctx.res);
          return undefined;
        },
      },
    ];
    this.server = new JsonHttpServer({
      name: 'worker',
      secret: opts.secret,
      routes,
      ...(opts.maxBodyBytes === undefined ? {} : { maxBodyBytes: opts.maxBodyBytes }),
      ...(opts.logger ? { logger: opts.logger } : {}),
    });
  }

  /** Listens on `host:port` (port 0 picks a free one) and returns the bound address. */
  listen(port: number, host = '127.0.0.1'): Promise<{ host: string; port: number }> {
    return this.server.listen(port, host);
  }

  /** Stops listening and closes every connection (log followers included). */
  close(): Promise<void> {
    return this.server.close();
  }

  private health(): Record<string, unknown> {
    const ex = this.opts.executor;
    return {
      status: 'ok',
      key: this.opts.nodeKey?.() ?? null,
      running: ex.running,
      capacity: ex.capacity,
      draining: ex.draining,
      ...this.opts.health?.(),
    };
  }

  private dispatchOne(body: unknown): { status: number; body: unknown } {
    let request: AttemptRequest;
    try {
      request = parseAttemptRequest(body);
    } catch (err) {
      if (err instanceof InvalidRequestError)
        throw new HttpError(400, err.code, err.message, { issues: err.issues });
      throw err;
    }
    const outcome = this.dispatch(request);
    return outcome;
  }

  private dispatchBatch(body: unknown): { status: number; body: unknown } {
    const attempts = (body as { attempts?: unknown } | null)?.attempts;
    if (typeof body !== 'object' || body === null || !Array.isArray(attempts)) {
      throw new HttpError(
        400,
        WireError.RequestInvalid,
        'attempts: expected { "attempts": [ …attempt requests ] }',
      );
    }
    if (attempts.length === 0 || attempts.length > this.maxBatch) {
      throw new HttpError(
        400,
        WireError.RequestInvalid,
        `attempts: expected 1..${this.maxBatch} attempts, got ${attempts.length}`,
      );
    }
    // All validated before any starts: a malformed batch is refused whole, so a 4xx means nothing ran.
    const issues: { path: string; message: string }[] = [];
    const requests = attempts.map((a, i) => {
      try {
        return parseAttemptRequest(a, `attempts[${i}]`);
      } catch (err) {
        if (!(err instanceof InvalidRequestError)) throw err;
        issues.push(...err.issues);
        return undefined;
      }
    });
    if (issues.length > 0)
      throw new HttpError(400, WireError.RequestInvalid, new InvalidRequestError(issues).message, { issues });
    const results = requests.map((r) => {
      const { status, body: b } = this.dispatch(r as AttemptRequest);
      return { status, ...(b as object) };
    });
    return { status: 200, body: { results } };
  }

  /** One validated dispatch: the status and body it gets. Never throws. */
  private dispatch(request: AttemptRequest): { status: number; body: unknown } {
    try {
      const nodeKey = this.opts.nodeKey?.() ?? null;
      if (request.worker !== null && nodeKey !== null && request.worker !== nodeKey) {
        return errorOutcome(
          409,
          WireError.WrongIncarnation,
          `attempt ${request.attemptId} was dispatched to ${request.worker}, but this worker is ${nodeKey}`,
        );
      }
      const current = this.opts.registration?.() ?? null;
      if (request.registration !== null && current !== null && request.registration !== current) {
        const who = request.worker ?? nodeKey ?? 'this worker';
        return errorOutcome(
          409,
          WireError.WrongRegistration,
          BigInt(request.registration) < BigInt(current)
            ? `attempt ${request.attemptId} was dispatched to registration ${request.registration} of worker ${who}, but this worker is now registration ${current} (it lost its ZooKeeper session and registered again); not started`
            : `attempt ${request.attemptId} was dispatched to registration ${request.registration} of worker ${who}, but this worker is still registration ${current} (it is registering again); not started`,
        );
      }
      const outcome = this.opts.executor.submit(request);
      const s = outcome.snapshot;
      return {
        status: outcome.accepted ? 202 : 200,
        body: { attemptId: s.attemptId, accepted: outcome.accepted, state: s.state, result: s.result },
      };
    } catch (err) {
      if (err instanceof AttemptRevokedError) return errorOutcome(409, err.code, err.message);
      if (err instanceof WorkerAtCapacityError) return errorOutcome(429, err.code, err.message);
      if (err instanceof WorkerDrainingError) return errorOutcome(503, err.code, err.message);
      this.opts.logger?.error({ err }, 'dispatch failed');
      return errorOutcome(
        500,
        WireError.Internal,
        `worker could not start the attempt: ${(err as Error).message}`,
      );
    }
  }

  /**
   * A master lost the answer to a dispatch (reset after the request, timeout) and asks, before it
   * gives the attempt to another worker, whether this one has it: a known attempt answers its
   * state (the master must not move it); an unknown one is revoked, so a late copy of the lost
   * request never starts it here. Validated whole first, and refused whole when it is addressed
   * to another incarnation (or this worker does not know its key yet): a revoke answered by the
   * wrong incarnation would tell the master nothing about the one it dispatched to.
   */
  private revoke(body: unknown): { status: number; body: unknown } {
    let request: RevokeRequest;
    try {
      request = parseRevokeRequest(body, this.maxBatch);
    } catch (err) {
      if (err instanceof InvalidRequestError)
        throw new HttpError(400, err.code, err.message, { issues: err.issues });
      throw err;
    }
    const nodeKey = this.opts.nodeKey?.() ?? null;
    if (request.worker !== null && request.worker !== nodeKey) {
      throw new HttpError(
        409,
        WireError.WrongIncarnation,
        nodeKey === null
          ? `the revoke is addressed to ${request.worker}, but this worker does not know its incarnation key yet`
          : `the revoke is addressed to ${request.worker}, but this worker is ${nodeKey}`,
      );
    }
    const results = request.attempts.map(({ attemptId, dispatchSeq }) => ({
      attemptId,
      state: this.opts.executor.revoke(attemptId, dispatchSeq).state,
    }));
    return { status: 200, body: { results } };
  }

  private cancel(attemptId: string, body: unknown): { status: number; body: unknown } {
    let reason = 'cancelled by the master';
    if (body !== undefined) {
      const r = (body as { reason?: unknown } | null)?.reason;
      if (
        typeof body !== 'object' ||
        body === null ||
        Array.isArray(body) ||
        (r !== undefined && typeof r !== 'string')
      ) {
        throw new HttpError(400, WireError.RequestInvalid, 'reason: expected { "reason"?: string }');
      }
      if (typeof r === 'string' && r.length > 0) reason = r.slice(0, 500);
    }
    const snapshot = this.opts.executor.cancel(attemptId, reason);
    if (!snapshot)
      throw new HttpError(404, WireError.NotFound, `attempt ${attemptId} is not known on this worker`);
    return { status: 200, body: { attemptId, state: snapshot.state } };
  }

  private async streamLog(
    attemptId: string,
    query: URLSearchParams,
    req: IncomingMessage,
    res: ServerResponse,
  ): Promise<void> {
    const offsetText = query.get('offset') ?? '0';
    if (!/^\d{1,15}$/.test(offsetText)) {
      throw new HttpError(
        400,
        WireError.RequestInvalid,
        `offset: expected a non-negative integer, got ${JSON.stringify(offsetText.slice(0, 40))}`,
      );
    }
    const followText = query.get('follow') ?? 'true';
    if (followText !== 'true' && followText !== 'false') {
      throw new HttpError(
        400,
        WireError.RequestInvalid,
        `follow: expected true or false, got ${JSON.stringify(followText.slice(0, 40))}`,
      );
    }
    const known = this.opts.executor.snapshot(attemptId);
    if (!(await this.opts.logs.exists(attemptId))) {
      if (!known)
        throw new HttpError(404, WireError.NotFound, `no log for attempt ${attemptId} on this worker`);
      // A noop attempt has no log: an empty log, not an error.
      res.writeHead(200, { 'Content-Type': 'text/plain; charset=utf-8', 'X-Attempt-State': known.state });
      res.end();
      return;
    }
    const ac = new AbortController();
    res.once('close', () => ac.abort());
    // Headers at once, so a follower of a quiet task knows it is attached.
    res.writeHead(200, {
      'Content-Type': 'text/plain; charset=utf-8',
      'X-Attempt-State': known?.state ?? 'unknown',
    });
    res.flushHeaders();
    try {
      for await (const chunk of this.opts.logs.follow(attemptId, {
        offset: Number(offsetText),
        signal: ac.signal,
        follow: followText === 'true',
      })) {
        if (ac.signal.aborted) break;
        if (!res.write(chunk)) await new Promise((r) => res.once('drain', r));
      }
    } finally {
      if (!req.destroyed) res.end();
    }
  }
}

function attemptIdOf(ctx: RequestContext): string {
  const id = ctx.params[0] ?? '';
  if (!ID_PATTERN.test(id)) {
    throw new HttpError(
      400,
      WireError.RequestInvalid,
      `attempt id ${JSON.stringify(id.slice(0, 80))} is malformed`,
    );
  }
  return id;
}

function errorOutcome(
  status: number,
  code: string,
  message: string,
  issues?: readonly { path: string; message: string }[],
) {
  return { status, body: { error: issues ? { code, message, issues } : { code, message } } };
}

/**
 * The JSON body of a master's request, after checking that the master speaks this worker's
 * protocol version (`X-Sched-Protocol`): a master of another version is refused with 400
 * `PROTOCOL_MISMATCH` before anything is read or done.
 */
async function fromMaster(ctx: RequestContext, opts: { optional?: boolean } = {}): Promise<unknown> {
  const mismatch = protocolMismatch(ctx.req.headers[PROTOCOL_HEADER], 'master');
  if (mismatch !== null) throw new HttpError(400, WireError.ProtocolMismatch, mismatch);
  return ctx.json(opts);
}
