import { createHash, timingSafeEqual } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { SchedError } from '../errors.js';
import type { Logger } from '../logger.js';

/**
 * The HTTP/1.1 keep-alive JSON plumbing shared by the worker endpoint, the master's report
 * endpoint and its REST API (docs/transport.md): authentication with the cluster secret, body
 * limits, clear `{ error: { code, message, issues? } }` answers for anything malformed, and a
 * raw 400 for bytes that never became a request. Routes are plain functions; no framework.
 */

const JSON_TYPE = 'application/json; charset=utf-8';

/** An error answered to an HTTP client as `status` with body `{ error: { code, message, issues? } }`. */
export class HttpError extends SchedError {
  constructor(
    readonly status: number,
    code: string,
    message: string,
    readonly extra: {
      issues?: readonly { path: string; message: string }[];
      headers?: Record<string, string>;
    } = {},
  ) {
    super(code, message, { retriable: status === 429 || status === 503 });
  }
}

export function errorBody(
  code: string,
  message: string,
  issues?: readonly { path: string; message: string }[],
) {
  return JSON.stringify({ error: issues ? { code, message, issues } : { code, message } });
}

/** A complete HTTP/1.1 error response for a socket that never became a request. */
export function rawErrorResponse(status: number, reason: string, code: string, message: string): string {
  const body = errorBody(code, message);
  return (
    `HTTP/1.1 ${status} ${reason}\r\n` +
    'Content-Type: application/json; charset=utf-8\r\n' +
    `Content-Length: ${Buffer.byteLength(body)}\r\n` +
    'Connection: close\r\n\r\n' +
    body
  );
}

export interface RequestContext {
  req: IncomingMessage;
  res: ServerResponse;
  method: string;
  path: string;
  query: URLSearchParams;
  /** Path parameters captured by the route's pattern groups, decoded. */
  params: string[];
  /** Reads the JSON body under the size limit. `optional`: an empty body gives undefined. */
  json(opts?: { optional?: boolean }): Promise<unknown>;
}

/** A route handler's answer: a JSON value with a status, or `undefined` when it wrote the response itself. */
export type RouteResult = { status: number; body: unknown } | undefined;

export interface Route {
  method: string;
  /** Anchored pattern over the path; capture groups become `params`. */
  pattern: RegExp;
  /** Served without the cluster secret (health checks, metrics). @defaultValue false */
  public?: boolean;
  handle(ctx: RequestContext): Promise<RouteResult> | RouteResult;
}

export interface JsonHttpServerOptions {
  /** What the server is, for messages (`worker`, `master`). */
  name: string;
  /** The cluster secret; requests must carry `Authorization: Bearer <secret>`. */
  secret: string;
  routes: Route[];
  /** @defaultValue 4 MiB */
  maxBodyBytes?: number;
  logger?: Logger;
}

export class JsonHttpServer {
  private readonly server: Server;
  private readonly secretDigest: Buffer;
  private readonly maxBodyBytes: number;
  private readonly sockets = new Set<Socket>();

  constructor(private readonly opts: JsonHttpServerOptions) {
    if (!opts.secret) {
      throw new SchedError(
        'CONFIG_INVALID',
        `cluster.secret: the ${opts.name} HTTP endpoint needs the cluster secret (SCHED_CLUSTER_SECRET)`,
      );
    }
    this.secretDigest = digest(opts.secret);
    this.maxBodyBytes = opts.maxBodyBytes ?? 4 * 1024 * 1024;
    this.server = createServer(
      { maxHeaderSize: 16 * 1024, keepAlive: true, requestTimeout: 30_000, headersTimeout: 15_000 },
      (req, res) =>
        void this.handle(req, res).catch((err) => {
          // Last resort: an unhandled rejection would end the process.
          this.opts.logger?.error({ err }, `${this.opts.name} HTTP handler failed`);
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
      onClientError(err, socket as Socket),
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
    return { host, port: (this.server.address() as AddressInfo).port };
  }

  /** Stops listening and closes every connection (streams included). */
  async close(): Promise<void> {
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    this.server.closeIdleConnections();
    for (const s of this.sockets) s.destroy();
    await closed;
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    try {
      const { path, query } = parseTarget(req.url);
      const method = req.method ?? '';
      const matching = this.opts.routes.filter((r) => r.pattern.test(path));
      if (matching.length === 0) {
        if (!this.authenticated(req.headers.authorization)) throw unauthenticated();
        throw new HttpError(
          404,
          'NOT_FOUND',
          `no such endpoint: ${path.slice(0, 200)}; see docs/transport.md`,
        );
      }
      const route = matching.find((r) => r.method === method);
      if (!route?.public && !this.authenticated(req.headers.authorization)) throw unauthenticated();
      if (!route) {
        const allowed = [...new Set(matching.map((r) => r.method))].join(', ');
        throw new HttpError(
          405,
          'METHOD_NOT_ALLOWED',
          `method ${method} is not allowed here; allowed: ${allowed}`,
          {
            headers: { Allow: allowed },
          },
        );
      }
      const m = route.pattern.exec(path) as RegExpExecArray;
      const params = m.slice(1).map((p) => {
        try {
          return decodeURIComponent(p ?? '');
        } catch {
          throw new HttpError(400, 'REQUEST_INVALID', 'a path segment is not valid percent-encoding');
        }
      });
      const result = await route.handle({
        req,
        res,
        method,
        path,
        query,
        params,
        json: (o) => this.readJson(req, o),
      });
      if (result) sendJson(res, result.status, result.body);
    } catch (err) {
      this.fail(req, res, err);
    }
  }

  private authenticated(header: string | undefined): boolean {
    if (!header?.startsWith('Bearer ')) return false;
    // Digests have a fixed length, so the comparison time says nothing about the secret's length either.
    return timingSafeEqual(digest(header.slice(7)), this.secretDigest);
  }

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
    } else if (err instanceof SchedError && err.code === 'NOT_FOUND') {
      status = 404;
      body = errorBody(err.code, err.message);
    } else {
      this.opts.logger?.error({ err, url: req.url }, `${this.opts.name} HTTP request failed`);
      body = errorBody('INTERNAL', `internal error on the ${this.opts.name}`);
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

export function sendJson(res: ServerResponse, status: number, value: unknown): void {
  const body = JSON.stringify(value);
  res.writeHead(status, { 'Content-Type': JSON_TYPE, 'Content-Length': String(Buffer.byteLength(body)) });
  res.end(body);
}

function unauthenticated(): HttpError {
  return new HttpError(
    401,
    'UNAUTHENTICATED',
    'missing or wrong cluster secret; send Authorization: Bearer <secret>',
    {
      headers: { 'WWW-Authenticate': 'Bearer' },
    },
  );
}

/** Answers bytes that never became a request (oversized headers, timeouts, garbage) and closes. */
export function onClientError(err: NodeJS.ErrnoException, socket: Socket): void {
  if (!socket.writable || err.code === 'ECONNRESET') {
    socket.destroy();
    return;
  }
  const tooLarge = err.code === 'HPE_HEADER_OVERFLOW';
  const timedOut = err.code === 'ERR_HTTP_REQUEST_TIMEOUT';
  const response = tooLarge
    ? rawErrorResponse(
        431,
        'Request Header Fields Too Large',
        'HEADERS_TOO_LARGE',
        'request headers are too large',
      )
    : timedOut
      ? rawErrorResponse(408, 'Request Timeout', 'REQUEST_TIMEOUT', 'the request was not completed in time')
      : rawErrorResponse(
          400,
          'Bad Request',
          'BAD_REQUEST',
          `malformed HTTP request: ${err.code ?? err.message}`,
        );
  socket.end(response);
  socket.destroySoon?.();
}

function digest(text: string): Buffer {
  return createHash('sha256').update(text).digest();
}

function parseTarget(url: string | undefined): { path: string; query: URLSearchParams } {
  try {
    const u = new URL(url ?? '/', 'http://sched');
    return { path: u.pathname, query: u.searchParams };
  } catch {
    throw new HttpError(400, 'BAD_REQUEST', 'malformed request target');
  }
}
