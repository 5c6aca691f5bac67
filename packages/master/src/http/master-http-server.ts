import { createHash, randomUUID, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { errorBody, HttpError, type Logger, onClientError, SchedError } from '@sched/core';
import Fastify, {
  type FastifyBaseLogger,
  type FastifyInstance,
  type FastifyReply,
  type FastifyRequest,
  LogController,
} from 'fastify';
import type { z } from 'zod';
import type { AccessLogLevel, ApiRoute } from './api-route.js';
import { apiErrorMap, issuesLine, toIssues } from './zod-issues.js';

/**
 * The master's HTTP endpoint on Fastify (docs/api.md, docs/transport.md): the REST API, the
 * workers' reports, the probes and the metrics, on one port.
 *
 * - Authentication: `Authorization: Bearer <cluster secret>` on every route that is not public,
 *   compared in constant time; unknown paths answer 401 before 404 so they reveal nothing.
 * - Every request gets an id (`X-Request-Id`, taken from the request when it carries a sane one)
 *   bound on its log lines, and one access-log line when it ends (`debug` for machine traffic).
 * - Request parts are validated by the routes' zod schemas; every problem is listed at once.
 * - Errors are `{ error: { code, message, issues? } }` whatever failed: routing, parsing, limits,
 *   validation or the handler.
 */

export interface MasterHttpServerOptions {
  /** The cluster secret; requests must carry `Authorization: Bearer <secret>`. */
  secret: string;
  routes: readonly ApiRoute[];
  logger: Logger;
  /** Body limit of routes that set none. @defaultValue 64 KiB */
  defaultBodyLimit?: number;
}

export const DEFAULT_BODY_LIMIT = 64 * 1024;
const REQUEST_ID = /^[A-Za-z0-9._:-]{1,64}$/;

interface RouteConfig {
  public: boolean;
  accessLog: AccessLogLevel;
}

export class MasterHttpServer {
  readonly app: FastifyInstance;
  private readonly secretDigest: Buffer;
  /** Path patterns of the routes, for 405's `Allow`. */
  private readonly patterns: { method: string; pattern: RegExp }[];

  constructor(private readonly opts: MasterHttpServerOptions) {
    if (!opts.secret) {
      throw new SchedError(
        'CONFIG_INVALID',
        'cluster.secret: the master HTTP endpoint needs the cluster secret (SCHED_CLUSTER_SECRET)',
      );
    }
    this.secretDigest = digest(opts.secret);
    this.patterns = opts.routes.map((r) => ({ method: r.method, pattern: pathPattern(r.url) }));
    const app = Fastify({
      loggerInstance: opts.logger as unknown as FastifyBaseLogger,
      // Fastify's own request lines are replaced by one access-log line per request (onResponse).
      logController: new LogController({ disableRequestLogging: true }),
      genReqId: (req: IncomingMessage) => {
        const given = req.headers['x-request-id'];
        return typeof given === 'string' && REQUEST_ID.test(given) ? given : randomUUID();
      },
      bodyLimit: opts.defaultBodyLimit ?? DEFAULT_BODY_LIMIT,
      http: { maxHeaderSize: 16 * 1024 },
      keepAliveTimeout: 10_000,
      requestTimeout: 30_000,
      forceCloseConnections: true,
      return503OnClosing: true,
      clientErrorHandler: (err: NodeJS.ErrnoException, socket: Socket) => onClientError(err, socket),
    });
    this.app = app;
    app.server.maxConnections = 1024;
    app.server.headersTimeout = 15_000;

    // JSON only; an empty body is "no body" (the schema decides whether one is needed).
    app.removeAllContentTypeParsers();
    app.addContentTypeParser('application/json', { parseAs: 'buffer' }, (_req, body, done) => {
      const buf = body as Buffer;
      if (buf.length === 0) return done(null, undefined);
      try {
        done(null, JSON.parse(buf.toString('utf8')));
      } catch (err) {
        done(new HttpError(400, 'BAD_JSON', `request body is not valid JSON: ${(err as Error).message}`));
      }
    });

    app.setValidatorCompiler(({ schema, httpPart }) => validatorFor(schema as z.ZodType, httpPart));
    app.setErrorHandler((err, request, reply) => this.answerError(err, request, reply));
    app.setNotFoundHandler((request, reply) => this.notFound(request, reply));

    app.addHook('onRequest', async (request, reply) => {
      reply.header('X-Request-Id', request.id);
      if (request.is404) return; // the not-found handler authenticates, then answers 404 or 405
      const config = request.routeOptions.config as Partial<RouteConfig>;
      if (!config.public && !this.authenticated(request.headers.authorization)) throw unauthenticated();
    });
    app.addHook('onResponse', async (request, reply) => {
      const config = request.routeOptions.config as Partial<RouteConfig>;
      request.log[config.accessLog ?? 'info'](
        {
          method: request.method,
          url: request.url.slice(0, 300),
          route: request.routeOptions.url ?? null,
          status: reply.statusCode,
          ms: Math.round(reply.elapsedTime * 10) / 10,
          remote: request.ip,
        },
        'http request',
      );
    });

    for (const r of opts.routes) {
      app.route({
        method: r.method,
        url: r.url,
        ...(r.bodyLimit === undefined ? {} : { bodyLimit: r.bodyLimit }),
        config: { public: r.public, accessLog: r.accessLog } satisfies RouteConfig,
        ...(r.checkHead ? { onRequest: async (request: FastifyRequest) => r.checkHead?.(request) } : {}),
        schema: {
          ...(r.params ? { params: r.params } : {}),
          ...(r.query ? { querystring: r.query } : {}),
          ...(r.body ? { body: r.body } : {}),
        },
        handler: async (request, reply) => {
          const answer = await r.handler(
            { params: request.params, query: request.query, body: request.body, raw: request },
            reply,
          );
          if ((answer as unknown) === reply) return reply;
          const json = answer as { status: number; body: unknown };
          return reply.code(json.status).send(json.body);
        },
      });
    }
  }

  /** Listens on `host:port` (port 0 picks a free one) and returns the bound address. */
  async listen(port: number, host = '127.0.0.1'): Promise<{ host: string; port: number }> {
    await this.app.listen({ port, host });
    return { host, port: (this.app.server.address() as AddressInfo).port };
  }

  /** Stops listening and closes every connection (log streams included). */
  async close(): Promise<void> {
    await this.app.close();
  }

  private authenticated(header: string | undefined): boolean {
    if (!header?.startsWith('Bearer ')) return false;
    // Digests have a fixed length, so the comparison time says nothing about the secret's length either.
    return timingSafeEqual(digest(header.slice(7)), this.secretDigest);
  }

  private notFound(request: FastifyRequest, reply: FastifyReply): void {
    if (!this.authenticated(request.headers.authorization)) throw unauthenticated();
    const path = (request.url.split('?')[0] ?? '').slice(0, 200);
    const allowed = [...new Set(this.patterns.filter((p) => p.pattern.test(path)).map((p) => p.method))];
    if (allowed.includes('GET')) allowed.push('HEAD');
    if (allowed.length > 0) {
      throw new HttpError(
        405,
        'METHOD_NOT_ALLOWED',
        `method ${request.method} is not allowed here; allowed: ${allowed.join(', ')}`,
        { headers: { Allow: allowed.join(', ') } },
      );
    }
    void reply;
    throw new HttpError(404, 'NOT_FOUND', `no such endpoint: ${path}; see docs/api.md`);
  }

  private answerError(err: unknown, request: FastifyRequest, reply: FastifyReply): void {
    const { status, code, message, issues, headers } = this.describeError(err, request);
    if (reply.sent || reply.raw.headersSent) {
      reply.raw.destroy();
      return;
    }
    // The request body may be unread (refused before reading, or too large): do not keep the
    // connection, or its leftover bytes would be parsed as the next request.
    if (!request.raw.complete) reply.header('Connection', 'close');
    for (const [k, v] of Object.entries(headers)) reply.header(k, v);
    reply
      .code(status)
      .type('application/json; charset=utf-8')
      .send(errorBody(code, message, issues.length > 0 ? issues : undefined));
  }

  private describeError(
    err: unknown,
    request: FastifyRequest,
  ): {
    status: number;
    code: string;
    message: string;
    issues: readonly { path: string; message: string }[];
    headers: Record<string, string>;
  } {
    if (err instanceof HttpError) {
      return {
        status: err.status,
        code: err.code,
        message: err.message,
        issues: err.extra.issues ?? [],
        headers: err.extra.headers ?? {},
      };
    }
    if (err instanceof SchedError && err.code === 'NOT_FOUND') {
      return { status: 404, code: err.code, message: err.message, issues: [], headers: {} };
    }
    const fst = err as { code?: string; statusCode?: number; message?: string };
    const limit = request.routeOptions.bodyLimit ?? this.opts.defaultBodyLimit ?? DEFAULT_BODY_LIMIT;
    switch (fst.code) {
      case 'FST_ERR_CTP_BODY_TOO_LARGE':
        return {
          status: 413,
          code: 'BODY_TOO_LARGE',
          message: `request body exceeds ${limit} bytes`,
          issues: [],
          headers: {},
        };
      case 'FST_ERR_CTP_INVALID_MEDIA_TYPE': {
        const type = (request.headers['content-type'] ?? '').split(';')[0]?.trim().toLowerCase();
        return {
          status: 415,
          code: 'UNSUPPORTED_MEDIA_TYPE',
          message: `Content-Type must be application/json, got ${JSON.stringify(type)}`,
          issues: [],
          headers: {},
        };
      }
    }
    if (typeof fst.statusCode === 'number' && fst.statusCode >= 400 && fst.statusCode < 500) {
      // Fastify's own refusals (bad content length, bad URL, …): the request is wrong.
      return {
        status: fst.statusCode,
        code: 'REQUEST_INVALID',
        message: fst.message ?? 'malformed request',
        issues: [],
        headers: {},
      };
    }
    request.log.error({ err, url: request.url }, 'master HTTP request failed');
    return {
      status: 500,
      code: 'INTERNAL',
      message: 'internal error on the master',
      issues: [],
      headers: {},
    };
  }
}

/** Validates one request part with its zod schema: every problem at once, as a 400. */
function validatorFor(schema: z.ZodType, httpPart: string | undefined) {
  return (data: unknown) => {
    // Fastify hands `null` for an absent body; an optional body schema wants `undefined`.
    const input = httpPart === 'body' && data === null ? undefined : data;
    const parsed = schema.safeParse(input, { error: apiErrorMap });
    if (parsed.success) return { value: parsed.data };
    if (httpPart === 'body' && input === undefined) {
      return {
        error: new HttpError(400, 'REQUEST_INVALID', 'request body is empty; expected a JSON object', {
          issues: [{ path: '', message: 'request body is empty; expected a JSON object' }],
        }),
      };
    }
    const issues = toIssues(parsed.error);
    return { error: new HttpError(400, 'REQUEST_INVALID', issuesLine(issues), { issues }) };
  };
}

/** `/v1/runs/:id` → `^/v1/runs/[^/]+$`. */
function pathPattern(url: string): RegExp {
  const source = url
    .split('/')
    .map((seg) => (seg.startsWith(':') ? '[^/]+' : seg.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')))
    .join('/');
  return new RegExp(`^${source}$`);
}

function unauthenticated(): HttpError {
  return new HttpError(
    401,
    'UNAUTHENTICATED',
    'missing or wrong cluster secret; send Authorization: Bearer <secret>',
    { headers: { 'WWW-Authenticate': 'Bearer' } },
  );
}

function digest(text: string): Buffer {
  return createHash('sha256').update(text).digest();
}
