// The master's HTTP endpoint on Fastify, over a real socket: authentication before routing,
// 404/405/413/415/400 answered as `{ error: { code, message, issues? } }`, every validation
// problem at once, per-route body limits, request ids, one access-log line per request, and
// streamed text answers. The routes here are small stand-ins; the real ones are exercised by
// the e2e suite, whose responses are checked against the OpenAPI document.
import { Writable } from 'node:stream';
import { createLogger, HttpError } from '@sched/core';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { z } from 'zod';
import { defineRoute, jsonResponse, textResponse } from '../src/http/api-route.js';
import { MasterHttpServer } from '../src/http/master-http-server.js';
import { errorSchema, generateOpenApi } from '../src/http/openapi.js';

const SECRET = 'master-http-secret-0123456789abcdef';
const lines: Record<string, unknown>[] = [];
const sink = new Writable({
  write(chunk, _enc, done) {
    for (const line of String(chunk).split('\n')) if (line.trim()) lines.push(JSON.parse(line));
    done();
  },
});

const echoBody = z.object({
  name: z.string().regex(/^[a-z]+$/, { error: 'expected lower-case letters' }),
  count: z.number().int().min(1).max(10),
  tags: z.array(z.string()).optional(),
});

const routes = [
  defineRoute({
    method: 'GET',
    url: '/open',
    summary: 'public',
    tags: ['t'],
    public: true,
    responses: { 200: jsonResponse(z.object({ ok: z.boolean() }), 'ok') },
    handler: () => ({ status: 200, body: { ok: true } }),
  }),
  defineRoute({
    method: 'POST',
    url: '/v1/things/:id',
    summary: 'validated',
    tags: ['t'],
    bodyLimit: 1024,
    params: z.object({ id: z.string().regex(/^\d+$/, { error: 'expected digits' }).transform(Number) }),
    query: z.object({ mode: z.enum(['a', 'b']).optional() }),
    body: echoBody,
    responses: { 200: jsonResponse(z.object({ id: z.number(), mode: z.string().nullable() }), 'echo') },
    handler: ({ params, query, body }) => ({
      status: 200,
      body: { id: params.id, mode: query.mode ?? null, name: body.name },
    }),
  }),
  defineRoute({
    method: 'POST',
    url: '/v1/optional',
    summary: 'optional body',
    tags: ['t'],
    body: z.object({ flag: z.boolean().optional() }).optional(),
    responses: { 200: jsonResponse(z.object({ flag: z.boolean() }), 'flag') },
    handler: ({ body }) => ({ status: 200, body: { flag: body?.flag ?? false } }),
  }),
  defineRoute({
    method: 'GET',
    url: '/v1/fails',
    summary: 'throws',
    tags: ['t'],
    responses: { 409: jsonResponse(errorSchema, 'conflict') },
    handler: (req) => {
      if (req.raw.headers['x-crash'] === 'yes') throw new Error('boom: a bug');
      throw new HttpError(409, 'CONFLICT', 'it conflicts');
    },
  }),
  defineRoute({
    method: 'GET',
    url: '/v1/text',
    summary: 'text',
    tags: ['t'],
    responses: { 200: textResponse('text/plain', 'words') },
    handler: (_req, reply) => reply.type('text/plain; charset=utf-8').send('hello\n'),
  }),
];

let server: MasterHttpServer;
let base: string;

beforeAll(async () => {
  server = new MasterHttpServer({
    secret: SECRET,
    logger: createLogger({ level: 'debug', pretty: false, destination: sink }),
    routes,
  });
  const { port } = await server.listen(0);
  base = `http://127.0.0.1:${port}`;
});

afterAll(async () => {
  await server?.close();
});

async function call(
  method: string,
  path: string,
  opts: { body?: string; auth?: boolean; headers?: Record<string, string> } = {},
) {
  const res = await fetch(`${base}${path}`, {
    method,
    headers: {
      ...(opts.auth === false ? {} : { authorization: `Bearer ${SECRET}` }),
      ...(opts.body === undefined ? {} : { 'content-type': 'application/json' }),
      ...opts.headers,
    },
    ...(opts.body === undefined ? {} : { body: opts.body }),
  });
  const text = await res.text();
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    json = undefined;
  }
  // biome-ignore lint/suspicious/noExplicitAny: the tests read arbitrary JSON answers
  return { status: res.status, json: json as Record<string, any>, text, headers: res.headers };
}

describe('MasterHttpServer', () => {
  test('authentication comes before routing: an unknown path without the secret is 401, with it 404', async () => {
    const anon = await call('GET', '/v1/nothing-here', { auth: false });
    expect(anon.status).toBe(401);
    expect(anon.json.error.code).toBe('UNAUTHENTICATED');
    expect(anon.headers.get('www-authenticate')).toBe('Bearer');
    const wrong = await call('GET', '/v1/fails', { headers: { authorization: 'Bearer not-it' } });
    expect(wrong.status).toBe(401);
    const known = await call('GET', '/v1/nothing-here');
    expect(known.status).toBe(404);
    expect(known.json.error).toEqual({
      code: 'NOT_FOUND',
      message: 'no such endpoint: /v1/nothing-here; see docs/api.md',
    });
    expect((await call('GET', '/open', { auth: false })).json).toEqual({ ok: true });
  });

  test('a wrong method is 405 with Allow', async () => {
    const r = await call('DELETE', '/v1/text');
    expect(r.status).toBe(405);
    expect(r.json.error.code).toBe('METHOD_NOT_ALLOWED');
    expect(r.headers.get('allow')).toBe('GET, HEAD');
  });

  test('every validation problem at once, each with its path, what was wrong and what is accepted', async () => {
    const r = await call('POST', '/v1/things/12x?mode=c', { body: JSON.stringify({ name: 'A', count: 0 }) });
    expect(r.status).toBe(400);
    expect(r.json.error.code).toBe('REQUEST_INVALID');
    // Fastify validates params first: the id problem is reported on its own.
    expect(r.json.error.issues).toEqual([{ path: 'id', message: 'expected digits' }]);
    const q = await call('POST', '/v1/things/12?mode=c', { body: JSON.stringify({ name: 'x', count: 1 }) });
    expect(q.json.error.issues).toEqual([
      { path: 'mode', message: 'expected one of a, b, got the string "c"' },
    ]);
    const b = await call('POST', '/v1/things/12', {
      body: JSON.stringify({ name: 'A', count: 0, tags: ['x', 3] }),
    });
    expect(b.status).toBe(400);
    expect(b.json.error.issues).toEqual([
      { path: 'name', message: 'expected lower-case letters' },
      { path: 'count', message: 'expected at least 1, got number 0' },
      { path: 'tags[1]', message: 'expected a string, got number 3' },
    ]);
    expect(b.json.error.message).toBe(
      'name: expected lower-case letters; count: expected at least 1, got number 0; tags[1]: expected a string, got number 3',
    );
    const ok = await call('POST', '/v1/things/12?mode=b', {
      body: JSON.stringify({ name: 'abc', count: 3 }),
    });
    expect(ok.status).toBe(200);
    expect(ok.json).toEqual({ id: 12, mode: 'b', name: 'abc' });
  });

  test('bodies: required or optional by schema, JSON only, malformed JSON named, limits per route', async () => {
    const none = await call('POST', '/v1/things/1');
    expect(none.status).toBe(400);
    expect(none.json.error.message).toBe('request body is empty; expected a JSON object');
    expect((await call('POST', '/v1/optional')).json).toEqual({ flag: false });
    expect((await call('POST', '/v1/optional', { body: '' })).json).toEqual({ flag: false });
    expect((await call('POST', '/v1/optional', { body: '{"flag":true}' })).json).toEqual({ flag: true });
    const text = await call('POST', '/v1/optional', {
      body: 'flag',
      headers: { 'content-type': 'text/plain' },
    });
    expect(text.status).toBe(415);
    expect(text.json.error).toEqual({
      code: 'UNSUPPORTED_MEDIA_TYPE',
      message: 'Content-Type must be application/json, got "text/plain"',
    });
    const bad = await call('POST', '/v1/optional', { body: '{"flag":' });
    expect(bad.status).toBe(400);
    expect(bad.json.error.code).toBe('BAD_JSON');
    expect(bad.json.error.message).toMatch(/^request body is not valid JSON: /);
    const big = await call('POST', '/v1/things/1', {
      body: JSON.stringify({ name: 'abc', count: 1, tags: ['x'.repeat(2000)] }),
    });
    expect(big.status).toBe(413);
    expect(big.json.error).toEqual({ code: 'BODY_TOO_LARGE', message: 'request body exceeds 1024 bytes' });
  });

  test('handler errors: an HttpError as given, a bug as 500 INTERNAL without its details (logged)', async () => {
    const conflict = await call('GET', '/v1/fails');
    expect(conflict.status).toBe(409);
    expect(conflict.json.error).toEqual({ code: 'CONFLICT', message: 'it conflicts' });
    const crash = await call('GET', '/v1/fails', { headers: { 'x-crash': 'yes' } });
    expect(crash.status).toBe(500);
    expect(crash.json.error).toEqual({ code: 'INTERNAL', message: 'internal error on the master' });
    expect(crash.text).not.toContain('boom');
    expect(lines.some((l) => l.msg === 'master HTTP request failed' && l.level === 50)).toBe(true);
  });

  test('request ids: a sane X-Request-Id is kept, otherwise one is made; one access-log line per request carries it', async () => {
    const kept = await call('GET', '/v1/text', { headers: { 'x-request-id': 'abc-123' } });
    expect(kept.text).toBe('hello\n');
    expect(kept.headers.get('content-type')).toBe('text/plain; charset=utf-8');
    expect(kept.headers.get('x-request-id')).toBe('abc-123');
    const made = await call('GET', '/v1/text', { headers: { 'x-request-id': 'no spaces allowed' } });
    const id = made.headers.get('x-request-id') ?? '';
    expect(id).toMatch(/^[0-9a-f-]{36}$/);
    const anon = await call('GET', '/v1/text', { auth: false });
    expect(anon.headers.get('x-request-id')).toMatch(/^[0-9a-f-]{36}$/);
    const access = lines.filter((l) => l.msg === 'http request' && l.reqId === id);
    expect(access).toHaveLength(1);
    expect(access[0]).toMatchObject({ method: 'GET', url: '/v1/text', route: '/v1/text', status: 200 });
    expect(typeof access[0]?.ms).toBe('number');
    expect(lines.filter((l) => l.msg === 'http request' && l.reqId === 'abc-123')).toHaveLength(1);
  });

  test('the generated OpenAPI document describes every route with its real schemas', () => {
    const doc = generateOpenApi(routes, '9.9.9');
    expect(doc.openapi).toBe('3.1.0');
    const op = doc.paths['/v1/things/{id}']?.post;
    expect(op?.parameters).toEqual([
      { name: 'id', in: 'path', required: true, schema: { type: 'string', pattern: '^\\d+$' } },
      { name: 'mode', in: 'query', required: false, schema: { type: 'string', enum: ['a', 'b'] } },
    ]);
    expect(op?.requestBody?.required).toBe(true);
    const body = op?.requestBody?.content['application/json'].schema as Record<string, unknown>;
    expect(body.required).toEqual(['name', 'count']);
    expect(Object.keys(op?.responses ?? {}).sort()).toEqual(['200', '400', '401', '413', '415', 'default']);
    expect(doc.paths['/open']?.get?.security).toEqual([]);
    expect(doc.paths['/v1/optional']?.post?.requestBody?.required).toBe(false);
    expect(doc.paths['/v1/text']?.get?.responses['200']).toEqual({
      description: 'words',
      content: { 'text/plain': { schema: { type: 'string' } } },
    });
  });
});
