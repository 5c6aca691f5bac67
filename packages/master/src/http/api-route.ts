import type { FastifyReply, FastifyRequest } from 'fastify';
import type { z } from 'zod';

/**
 * A route of the master's HTTP endpoint, declared once: the zod schemas of its parameters, query,
 * body and of every response it gives are both what Fastify validates requests with and what the
 * OpenAPI document is generated from (`openapi.ts`), so the document cannot describe another API
 * than the one served.
 */

/** A text (not JSON) response, e.g. a task log or the Prometheus exposition. */
export interface TextResponse {
  readonly kind: 'text';
  readonly contentType: string;
  readonly description: string;
}

export const textResponse = (contentType: string, description: string): TextResponse => ({
  kind: 'text',
  contentType,
  description,
});

/** A JSON response: its schema, and what it means. */
export interface JsonResponse {
  readonly kind: 'json';
  readonly schema: z.ZodType;
  readonly description: string;
}

export const jsonResponse = (schema: z.ZodType, description: string): JsonResponse => ({
  kind: 'json',
  schema,
  description,
});

export type ResponseSpec = JsonResponse | TextResponse;

/** Access-log level: `debug` for machine traffic (reports, probes, scrapes), `info` for people. */
export type AccessLogLevel = 'info' | 'debug';

export type HttpMethod = 'GET' | 'POST' | 'DELETE';

/** What a handler gets: the request parts already validated (and transformed) by the schemas. */
export interface ApiRequest<P, Q, B> {
  params: P;
  query: Q;
  body: B;
  /** Fastify's request: headers, the request id (`raw.id`), the logger (`raw.log`). */
  raw: FastifyRequest;
}

/** A handler's answer: JSON with a status, or `reply` itself after streaming or sending text. */
export type RouteAnswer = { status: number; body: unknown } | FastifyReply;

export interface RouteDefinition<P extends z.ZodType, Q extends z.ZodType, B extends z.ZodType> {
  method: HttpMethod;
  /** Fastify path syntax: `/v1/runs/:id`. */
  url: string;
  summary: string;
  description?: string;
  tags: readonly string[];
  /** Served without the cluster secret (probes, metrics). @defaultValue false */
  public?: boolean;
  /** Largest accepted body, bytes. @defaultValue 64 KiB (the server's default) */
  bodyLimit?: number;
  /** @defaultValue 'info' */
  accessLog?: AccessLogLevel;
  /** Checks on the request head, after authentication and before the body is read (throw to refuse). */
  checkHead?: (request: FastifyRequest) => void;
  params?: P;
  query?: Q;
  /** The body's schema; it decides whether a body is required (`.optional()` when not). */
  body?: B;
  /**
   * The body as the OpenAPI document shows it, when the route validates parts of it itself
   * (each report of a batch is acked or rejected on its own, not the batch refused).
   */
  documentedBody?: z.ZodType;
  /** Every status the route answers with, besides the errors every route can give (400, 401, 413, 415, 500). */
  responses: Readonly<Record<number, ResponseSpec>>;
  handler(
    req: ApiRequest<z.output<P>, z.output<Q>, z.output<B>>,
    reply: FastifyReply,
  ): Promise<RouteAnswer> | RouteAnswer;
}

/** A route with its types erased, as the server and the document generator hold it. */
export interface ApiRoute {
  readonly method: HttpMethod;
  readonly url: string;
  readonly summary: string;
  readonly description?: string;
  readonly tags: readonly string[];
  readonly public: boolean;
  readonly bodyLimit?: number;
  readonly accessLog: AccessLogLevel;
  readonly checkHead?: (request: FastifyRequest) => void;
  readonly params?: z.ZodType;
  readonly query?: z.ZodType;
  readonly body?: z.ZodType;
  readonly documentedBody?: z.ZodType;
  readonly responses: Readonly<Record<number, ResponseSpec>>;
  handler(
    req: ApiRequest<unknown, unknown, unknown>,
    reply: FastifyReply,
  ): Promise<RouteAnswer> | RouteAnswer;
}

export function defineRoute<
  P extends z.ZodType = z.ZodType<Record<string, never>>,
  Q extends z.ZodType = z.ZodType<Record<string, never>>,
  B extends z.ZodType = z.ZodType<undefined>,
>(def: RouteDefinition<P, Q, B>): ApiRoute {
  return {
    ...def,
    public: def.public ?? false,
    accessLog: def.accessLog ?? 'info',
    handler: def.handler as ApiRoute['handler'],
  };
}
