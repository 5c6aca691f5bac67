import { createHash, timingSafeEqual } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { type Logger, SchedError } from '@sched/core';
import { type AttemptRequest, ID_PATTERN, parseAttemptRequest } from '../executor/attempt-request.js';
import { InvalidRequestError, WorkerAtCapacityError, WorkerDrainingError } from '../executor/errors.js';
import type { TaskExecutor } from '../executor/task-executor.js';
import type { LogStore } from '../logs/log-store.js';
import { errorBody, HttpError, rawErrorResponse } from './http-error.js';

export interface WorkerHttpServerOptions {
  executor: TaskExecutor;
  logs: LogStore;
  /** The cluster secret; requests must carry `Authorization: Bearer <secret>`. */
  secret: string;
  /** This worker's incarnation key once known; a dispatch addressed to another incarnation is refused. */
  workerKey?: () => string | null;
  /** Extra fields for `GET /v1/health` (state, groups…). */
  health?: () => Record<string, unknown>;
  /**
   * GET endpoints served WITHOUT authentication, by exact path (e.g. `/metrics` for a Prometheus
   * scraper). Nothing else is public. @defaultValue none
   */
  publicGet?: Record<string, (req: IncomingMessage, res: ServerResponse) => void | Promise<void>>;
  /** Largest accepted request body. @defaultValue 4 MiB */
  maxBodyBytes?: number;
  /** Most attempts in one batch dispatch. @defaultValue 1000 */
  maxBatch?: number;
  logger?: Logger;
}

const JSON_TYPE = 'application/json; charset=utf-8';

/**
 * The worker's side of the master↔worker transport (docs/transport.md): HTTP/1.1 keep-alive with
 * JSON bodies on `node:http` (a handful of fixed routes do not need a framework, and the hot
 * dispatch path stays allocation-light). Every request is authenticated with the cluster secret;
 * anything malformed, oversized or unauthenticated gets a 4xx with `{ error: { code, message } }`
 * and never reaches the executor.
 */
export class WorkerHttpServer {
  private readonly server: Server;
  private readonly secretDigest: Buffer;
  private readonly maxBodyBytes: number;
  private readonly maxBatch: number;
  private readonly sockets = new Set<Socket>();

  constructor(private readonly opts: WorkerHttpServerOptions) {
    if (!opts.secret) {
      throw new SchedError(
        'CONFIG_INVALID',
        'cluster.secret: the worker HTTP endpoint needs the cluster secret (SCHED_CLUSTER_SECRET)',
      );
    }
    this.secretDigest = digest(opts.secret);
    this.maxBodyBytes = opts.maxBodyBytes ?? 4 * 1024 * 1024;
    this.maxBatch = opts.maxBatch ?? 1000;
    this.server = createServer(
      { maxHeaderSize: 16 * 1024, keepAlive: true, requestTimeout: 30_000, headersTimeout: 15_000 },
      (req, res) =>
        void this.handle(req, res).catch((err) => {
          // Last resort: an unhandled rejection would end the worker process.
          this.opts.logger?.error({ err }, 'worker HTTP handler failed');
          res.destroy();
        }),
    );
    this.server.keepAliveTimeout = 10_000;
    this.server.maxConnections = 1024;
    this.server.on('connection', (socket) => {
      this.sockets.add(socket);
      socket.once('close', () => this.sockets.delete(socket));
    });
    this.server.on('clientError', (err: NodeJS.ErrnoException, socket) =>
      this.onClientError(err, socket as Socket),
    );
  }

  /** Listens on `host:port` (port 0 picks a free one) and returns the bound address. */
  async listen(port: number, host = '127.0.0.1'): Promise<{ host: string; port: number }> {
    await new Promise<void>((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(port, host, () => {
        this.server.off('error', reject);
        resolve();
      });
    });
    const address = this.server.address() as AddressInfo;
    return { host, port: address.port };
  }

  /** Stops listening and closes every connection (log followers included). */
  async close(): Promise<void> {
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    this.server.closeIdleConnections();
    for (const s of this.sockets) s.destroy();
    await closed;
  }

  private onClientError(err: NodeJS.ErrnoException, socket: Socket): void {
    if (err.code === 'ECONNRESET' || !socket.writable) {
      socket.destroy();
      return;
    }
    let response: string;
    if (err.code === 'HPE_HEADER_OVERFLOW') {
      response = rawErrorResponse(
        431,
        'Request Header Fields Too Large',
        'HEADERS_TOO_LARGE',
        'request headers exceed 16 KiB',
      );
    } else if (err.code === 'ERR_HTTP_REQUEST_TIMEOUT') {
      response = rawErrorResponse(
        408,
        'Request Timeout',
        'REQUEST_TIMEOUT',
        'the request was not received in time',
      );
    } else {
      response = rawErrorResponse(
        400,
        'Bad Request',
        'BAD_REQUEST',
        `malformed HTTP request (${err.code ?? err.message})`,
      );
    }
    socket.end(response);
    socket.destroySoon?.();
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    try {
      const open = this.opts.publicGet?.[(req.url ?? '').split('?')[0] as string];
      if (open && req.method === 'GET') return await open(req, res);
      if (!this.authenticated(req.headers.authorization)) {
        throw new HttpError(
          401,
          'UNAUTHENTICATED',
          'missing or wrong cluster secret; send Authorization: Bearer <secret>',
          {
            headers: { 'WWW-Authenticate': 'Bearer' },
          },
        );
      }
      const { path, query } = parseTarget(req.url);
      const method = req.method ?? '';
      if (path === '/v1/health') {
        allow(method, ['GET']);
        return send(res, 200, this.health());
      }
      if (path === '/v1/attempts') {
        allow(method, ['POST']);
        return this.dispatchOne(await this.readJson(req), res);
      }
      if (path === '/v1/attempts/batch') {
        allow(method, ['POST']);
        return this.dispatchBatch(await this.readJson(req), res);
      }
      const m = /^\/v1\/attempts\/([^/]+)(\/cancel|\/log)?$/.exec(path);
      if (m) {
        let attemptId: string;
        try {
          attemptId = decodeURIComponent(m[1] as string);
        } catch {
          throw new HttpError(400, 'REQUEST_INVALID', 'attempt id in the path is not valid percent-encoding');
        }
        if (!ID_PATTERN.test(attemptId)) {
          throw new HttpError(
            400,
            'REQUEST_INVALID',
            `attempt id ${JSON.stringify(attemptId.slice(0, 80))} is malformed`,
          );
        }
        if (m[2] === '/cancel') {
          allow(method, ['POST']);
          return this.cancel(attemptId, await this.readJson(req, { optional: true }), res);
        }
        if (m[2] === '/log') {
          allow(method, ['GET']);
          return await this.streamLog(attemptId, query, req, res);
        }
        allow(method, ['GET']);
        const snapshot = this.opts.executor.snapshot(attemptId);
        if (!snapshot)
          throw new HttpError(404, 'NOT_FOUND', `attempt ${attemptId} is not known on this worker`);
        return send(res, 200, snapshot);
      }
      throw new HttpError(404, 'NOT_FOUND', `no such endpoint: ${path.slice(0, 200)}; see docs/transport.md`);
    } catch (err) {
      this.fail(req, res, err);
    }
  }

  private authenticated(header: string | undefined): boolean {
    if (!header?.startsWith('Bearer ')) return false;
    // Digests have a fixed length, so the comparison time says nothing about the secret's length either.
    return timingSafeEqual(digest(header.slice(7)), this.secretDigest);
  }

  private health(): Record<string, unknown> {
    const ex = this.opts.executor;
    return {
      status: 'ok',
      key: this.opts.workerKey?.() ?? null,
      running: ex.running,
      capacity: ex.capacity,
      draining: ex.draining,
      ...this.opts.health?.(),
    };
  }

  private dispatchOne(body: unknown, res: ServerResponse): void {
    let request: AttemptRequest;
    try {
      request = parseAttemptRequest(body);
    } catch (err) {
      if (err instanceof InvalidRequestError)
        throw new HttpError(400, err.code, err.message, { issues: err.issues });
      throw err;
    }
    const outcome = this.dispatch(request);
    send(res, outcome.status, outcome.body);
  }

  private dispatchBatch(body: unknown, res: ServerResponse): void {
    const attempts = (body as { attempts?: unknown } | null)?.attempts;
    if (typeof body !== 'object' || body === null || !Array.isArray(attempts)) {
      throw new HttpError(400, 'REQUEST_INVALID', 'attempts: expected { "attempts": [ …attempt requests ] }');
    }
    if (attempts.length === 0 || attempts.length > this.maxBatch) {
      throw new HttpError(
        400,
        'REQUEST_INVALID',
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
      throw new HttpError(400, 'REQUEST_INVALID', new InvalidRequestError(issues).message, { issues });
    const results = requests.map((r) => {
      const { status, body: b } = this.dispatch(r as AttemptRequest);
      return { status, ...(b as object) };
    });
    send(res, 200, { results });
  }

  /** One validated dispatch: the status and body it gets. Never throws. */
  private dispatch(request: AttemptRequest): { status: number; body: unknown } {
    try {
      const own = this.opts.workerKey?.() ?? null;
      if (request.worker !== null && own !== null && request.worker !== own) {
        return errorOutcome(
          409,
          'WRONG_INCARNATION',
          `attempt ${request.attemptId} was dispatched to ${request.worker}, but this worker is ${own}`,
        );
      }
      const outcome = this.opts.executor.submit(request);
      const s = outcome.snapshot;
      return {
        status: outcome.accepted ? 202 : 200,
        body: { attemptId: s.attemptId, accepted: outcome.accepted, state: s.state, result: s.result },
      };
    } catch (err) {
      if (err instanceof WorkerAtCapacityError) return errorOutcome(429, err.code, err.message);
      if (err instanceof WorkerDrainingError) return errorOutcome(503, err.code, err.message);
      this.opts.logger?.error({ err }, 'dispatch failed');
      return errorOutcome(500, 'INTERNAL', `worker could not start the attempt: ${(err as Error).message}`);
    }
  }

  private cancel(attemptId: string, body: unknown, res: ServerResponse): void {
    let reason = 'cancelled by the master';
    if (body !== undefined) {
      const r = (body as { reason?: unknown } | null)?.reason;
      if (
        typeof body !== 'object' ||
        body === null ||
        Array.isArray(body) ||
        (r !== undefined && typeof r !== 'string')
      ) {
        throw new HttpError(400, 'REQUEST_INVALID', 'reason: expected { "reason"?: string }');
      }
      if (typeof r === 'string' && r.length > 0) reason = r.slice(0, 500);
    }
    const snapshot = this.opts.executor.cancel(attemptId, reason);
    if (!snapshot) throw new HttpError(404, 'NOT_FOUND', `attempt ${attemptId} is not known on this worker`);
    send(res, 200, { attemptId, state: snapshot.state });
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
        'REQUEST_INVALID',
        `offset: expected a non-negative integer, got ${JSON.stringify(offsetText.slice(0, 40))}`,
      );
    }
    const followText = query.get('follow') ?? 'true';
    if (followText !== 'true' && followText !== 'false') {
      throw new HttpError(
        400,
        'REQUEST_INVALID',
        `follow: expected true or false, got ${JSON.stringify(followText.slice(0, 40))}`,
      );
    }
    const known = this.opts.executor.snapshot(attemptId);
    if (!(await this.opts.logs.exists(attemptId))) {
      if (!known) throw new HttpError(404, 'NOT_FOUND', `no log for attempt ${attemptId} on this worker`);
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

  /** Reads and parses a JSON body under the size limit. `optional`: an empty body gives undefined. */
  private async readJson(req: IncomingMessage, opts: { optional?: boolean } = {}): Promise<unknown> {
    const declared = req.headers['content-length'];
    if (declared !== undefined && Number(declared) > this.maxBodyBytes) {
      throw new HttpError(
        413,
        'BODY_TOO_LARGE',
        `request body of ${declared} bytes exceeds ${this.maxBodyBytes} bytes`,
      );
    }
    const chunks: Buffer[] = [];
    let size = 0;
    for await (const chunk of req as AsyncIterable<Buffer>) {
      size += chunk.length;
      if (size > this.maxBodyBytes) {
        throw new HttpError(413, 'BODY_TOO_LARGE', `request body exceeds ${this.maxBodyBytes} bytes`);
      }
      chunks.push(chunk);
    }
    if (size === 0) {
      if (opts.optional) return undefined;
      throw new HttpError(400, 'REQUEST_INVALID', 'request body is empty; expected a JSON object');
    }
    const type = (req.headers['content-type'] ?? '').split(';')[0]?.trim().toLowerCase();
    if (type !== 'application/json') {
      throw new HttpError(
        415,
        'UNSUPPORTED_MEDIA_TYPE',
        `Content-Type must be application/json, got ${JSON.stringify(type)}`,
      );
    }
    try {
      return JSON.parse(Buffer.concat(chunks, size).toString('utf8'));
    } catch (err) {
      throw new HttpError(400, 'BAD_JSON', `request body is not valid JSON: ${(err as Error).message}`);
    }
  }

  private fail(req: IncomingMessage, res: ServerResponse, err: unknown): void {
    let status = 500;
    let body: string;
    const headers: Record<string, string> = { 'Content-Type': JSON_TYPE };
    if (err instanceof HttpError) {
      status = err.status;
      body = errorBody(err.code, err.message, err.extra.issues);
      Object.assign(headers, err.extra.headers);
    } else {
      this.opts.logger?.error({ err, url: req.url }, 'worker HTTP request failed');
      body = errorBody('INTERNAL', 'internal error on the worker');
    }
    if (res.headersSent) {
      res.destroy();
      return;
    }
    // The request body may be unread (refused before reading, or too large): do not keep the
    // connection, or its leftover bytes would be parsed as the next request.
    if (!req.complete) headers.Connection = 'close';
    res.writeHead(status, { ...headers, 'Content-Length': String(Buffer.byteLength(body)) });
    res.end(body);
    if (!req.complete) res.once('finish', () => req.socket.destroySoon?.());
  }
}

function digest(text: string): Buffer {
  return createHash('sha256').update(text).digest();
}

function parseTarget(url: string | undefined): { path: string; query: URLSearchParams } {
  try {
    const u = new URL(url ?? '/', 'http://worker');
    return { path: u.pathname, query: u.searchParams };
  } catch {
    throw new HttpError(400, 'BAD_REQUEST', 'malformed request target');
  }
}

function allow(method: string, allowed: string[]): void {
  if (!allowed.includes(method)) {
    throw new HttpError(
      405,
      'METHOD_NOT_ALLOWED',
      `method ${method} is not allowed here; allowed: ${allowed.join(', ')}`,
      {
        headers: { Allow: allowed.join(', ') },
      },
    );
  }
}

function send(res: ServerResponse, status: number, value: unknown): void {
  const body = JSON.stringify(value);
  res.writeHead(status, { 'Content-Type': JSON_TYPE, 'Content-Length': String(Buffer.byteLength(body)) });
  res.end(body);
}

function errorOutcome(
  status: number,
  code: string,
  message: string,
  issues?: readonly { path: string; message: string }[],
) {
  return { status, body: { error: issues ? { code, message, issues } : { code, message } } };
}
