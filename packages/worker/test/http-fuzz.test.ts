import { existsSync, readdirSync } from 'node:fs';
import { Agent, request as httpRequest } from 'node:http';
import { connect } from 'node:net';
import { join } from 'node:path';
import { PROTOCOL_HEADER, PROTOCOL_VERSION } from '@sched/protocol';
import { SeededRandom } from '@sched/testkit';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { TaskExecutor } from '../src/executor/task-executor.js';
import { WorkerHttpServer } from '../src/http/worker-http-server.js';
import { LogStore } from '../src/logs/log-store.js';
import { attemptRequest, tempDir } from './helpers.js';

/**
 * A worker refuses malformed and unauthenticated input (the master's side:
 * test/e2e/master-fuzz.test.ts): 10,000 malformed or unauthenticated requests, raw TCP and HTTP.
 * Every one gets a 4xx, the worker keeps serving, and no task runs — even though many of the
 * unauthenticated requests carry a perfectly valid dispatch whose task would leave a marker file.
 */
const TOTAL = 10_000;
const CONCURRENCY = 24;
const SECRET = 'fuzz-secret-0123456789-0123456789';
const MAX_BODY = 32 * 1024;

let dir: Awaited<ReturnType<typeof tempDir>>;
let executor: TaskExecutor;
let server: WorkerHttpServer;
let port: number;
let marker: string;

beforeAll(async () => {
  dir = await tempDir('fuzz');
  marker = join(dir.path, 'task-ran');
  const logs = new LogStore({ dir: join(dir.path, 'logs') });
  executor = new TaskExecutor({ capacity: 4, killGraceMs: 200, logs, workDir: join(dir.path, 'work') });
  server = new WorkerHttpServer({ executor, logs, secret: SECRET, maxBodyBytes: MAX_BODY });
  ({ port } = await server.listen(0));
});
afterAll(async () => {
  await executor.killAll('test over');
  await server.close();
  await dir.remove();
});

/** The fuzz inputs' random source: repeatable from the seed. */
function prng(seed: number): () => number {
  const random = new SeededRandom(seed);
  return () => random.next();
}

type Probe =
  | { kind: 'raw'; label: string; bytes: Buffer }
  | {
      kind: 'http';
      label: string;
      method: string;
      path: string;
      headers: Record<string, string>;
      body?: Buffer;
    };

const validDispatch = () =>
  attemptRequest(
    { type: 'shell', command: `touch '${marker}'` },
    { attemptId: `fuzz-${Math.random().toString(36).slice(2)}` },
  );

const wrongAuth = [
  undefined,
  '',
  'Bearer',
  'Bearer ',
  `bearer ${SECRET}`,
  `Basic ${Buffer.from(`x:${SECRET}`).toString('base64')}`,
  `Bearer  ${SECRET}`, // (a trailing space would be trimmed by HTTP itself: that one is correct)
  `Bearer ${SECRET.slice(0, -1)}`,
  `Bearer ${SECRET}x`,
  `Bearer ${'A'.repeat(4000)}`,
  `Token ${SECRET}`,
];

const rawCases: ((r: () => number) => Buffer)[] = [
  // Random bytes, then a blank line so the parser always reaches a verdict.
  (r) =>
    Buffer.concat([
      Buffer.from(Array.from({ length: 1 + Math.floor(r() * 600) }, () => Math.floor(r() * 256))),
      Buffer.from('\r\n\r\n'),
    ]),
  () => Buffer.from('GET\r\n\r\n'),
  () => Buffer.from('GET / HTTP/9.9\r\n\r\n'),
  () => Buffer.from('POST /v1/attempts HTTP/1.1\r\nHost: x\r\nContent-Length: -5\r\n\r\n'),
  () =>
    Buffer.from(
      'POST /v1/attempts HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 7\r\n\r\nhello',
    ),
  () =>
    Buffer.from(
      'POST /v1/attempts HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n0\r\n\r\n',
    ),
  () =>
    Buffer.from(
      `POST /v1/attempts HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${SECRET}\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nnot-hex\r\n\r\n`,
    ),
  () => Buffer.from('GET /v1/health HTTP/1.1\r\nBad Header Without Colon\r\n\r\n'),
  () => Buffer.from('GET /v1/health HTTP/1.1\r\nX-Nul: a\u0000b\r\n\r\n'),
  () => Buffer.from(`GET /v1/health HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(20 * 1024)}\r\n\r\n`),
  () => Buffer.from('GET /v1/he alth HTTP/1.1\r\n\r\n'),
  () => Buffer.from('\u0016\u0003\u0001\u0002\u0000\u0001\u0000\u0001\u00fc\u0003\u0003\r\n\r\n'), // a TLS ClientHello start
  // A valid dispatch without credentials, raw.
  () => {
    const body = JSON.stringify(validDispatch());
    return Buffer.from(
      `POST /v1/attempts HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`,
    );
  },
];

function probe(i: number, r: () => number): Probe {
  const pick = <T>(list: readonly T[]): T => list[Math.floor(r() * list.length)] as T;
  // Authenticated as a master of this protocol version.
  const auth = (h: Record<string, string>) => ({
    ...h,
    authorization: `Bearer ${SECRET}`,
    [PROTOCOL_HEADER]: String(PROTOCOL_VERSION),
  });
  const json = { 'content-type': 'application/json' };
  switch (i % 4) {
    case 0:
      return { kind: 'raw', label: `raw#${i}`, bytes: pick(rawCases)(r) };
    case 1: {
      // Unauthenticated: every endpoint, most with a valid body.
      const a = pick(wrongAuth);
      const headers: Record<string, string> = { ...json };
      if (a !== undefined) headers.authorization = a;
      const [method, path, body] = pick<[string, string, unknown]>([
        ['POST', '/v1/attempts', validDispatch()],
        ['POST', '/v1/attempts/batch', { attempts: [validDispatch(), validDispatch()] }],
        ['POST', '/v1/attempts/x1/cancel', {}],
        ['POST', '/v1/attempts/revoke', { worker: null, attempts: [{ attemptId: 'x1', dispatchSeq: 1 }] }],
        ['GET', '/v1/attempts/x1/log', undefined],
        ['GET', '/v1/health', undefined],
        ['DELETE', '/', undefined],
      ]);
      return {
        kind: 'http',
        label: `unauth#${i} ${method} ${path} auth=${String(a).slice(0, 20)}`,
        method,
        path,
        headers,
        body: body === undefined ? undefined : Buffer.from(JSON.stringify(body)),
      };
    }
    case 2: {
      // Authenticated, malformed bodies.
      const valid = validDispatch() as unknown as Record<string, unknown>;
      const mutations: (() => unknown)[] = [
        () => ({ ...valid, attemptId: pick([null, 5, '', '../x', 'a b', 'x'.repeat(200)]) }),
        () => ({ ...valid, attempt: pick([0, -1, 1.5, '1', null]) }),
        () => ({
          ...valid,
          task: pick([null, 'shell', [], { type: 'ftp' }, { type: 'shell' }, { type: 'shell', command: 7 }]),
        }),
        () => ({ ...valid, task: { type: 'script', interpreter: 'sh', source: 5 } }),
        () => ({
          ...valid,
          task: { type: 'http', url: pick(['not a url', 'file:///etc/passwd', 'ftp://x']) },
        }),
        () => ({ ...valid, params: pick([{ SCHED_RUN_ID: 'x' }, { 'a-b': 'c' }, { A: 1 }, []]) }),
        () => ({ ...valid, shardIndex: 5, shardTotal: 2 }),
        () => ({ ...valid, timeoutMs: pick([-1, 0, 'soon', 1.5]) }),
        () => ({ ...valid, fireTime: 'yesterday' }),
        () => pick([null, 42, 'string', [], true]),
        () => ({ attempts: [valid, { ...valid, attemptId: '' }] }),
      ];
      // Revoke bodies: each wrong in one field, so none revokes anything.
      const item = { attemptId: 'rv-1', dispatchSeq: 1 };
      const revokeMutations: (() => unknown)[] = [
        () => pick([null, 42, 'string', [], true, {}]),
        () => ({ worker: null, attempts: pick([null, 'all', {}, []]) }),
        () => ({ worker: pick([5, '', true, {}]), attempts: [item] }),
        () => ({
          worker: null,
          attempts: [item, { ...item, dispatchSeq: pick([-1, 1.5, '2', null, 2 ** 31]) }],
        }),
        () => ({ worker: null, attempts: [{ ...item, attemptId: pick([null, 5, '', '../x', 'a b']) }] }),
        () => ({ worker: null, attempts: [item, pick([null, 'rv-2', [], { attemptId: 'rv-2' }])] }),
        () => ({ worker: null, attempts: Array.from({ length: 1001 }, () => item) }),
      ];
      const variant = Math.floor(r() * 9);
      const base = { kind: 'http' as const, method: 'POST', path: '/v1/attempts' };
      if (variant === 0) {
        return {
          ...base,
          label: `badjson#${i}`,
          headers: auth(json),
          body: Buffer.from(JSON.stringify(valid).slice(0, Math.floor(r() * 100))),
        };
      }
      if (variant === 1) {
        return {
          ...base,
          label: `type#${i}`,
          headers: auth({ 'content-type': pick(['text/plain', 'application/xml', 'multipart/form-data']) }),
          body: Buffer.from(JSON.stringify(valid)),
        };
      }
      if (variant === 2) {
        return {
          ...base,
          label: `big#${i}`,
          headers: auth(json),
          body: Buffer.alloc(MAX_BODY + 1 + Math.floor(r() * 50_000), 0x20),
        };
      }
      if (variant === 3) {
        return { ...base, label: `empty#${i}`, headers: auth(json), body: Buffer.alloc(0) };
      }
      if (variant === 4 && r() < 0.5) {
        // A valid dispatch from a master of another protocol version, or of none.
        const headers: Record<string, string> = { ...json, authorization: `Bearer ${SECRET}` };
        const version = pick([undefined, '0', String(PROTOCOL_VERSION + 1), 'x']);
        if (version !== undefined) headers[PROTOCOL_HEADER] = version;
        return { ...base, label: `protocol#${i}`, headers, body: Buffer.from(JSON.stringify(valid)) };
      }
      if (variant === 8) {
        return {
          ...base,
          path: '/v1/attempts/revoke',
          label: `revoke#${i}`,
          headers: auth(json),
          body: Buffer.from(JSON.stringify(pick(revokeMutations)())),
        };
      }
      const m = pick(mutations)();
      const isBatch = typeof m === 'object' && m !== null && 'attempts' in m;
      return {
        ...base,
        path: isBatch ? '/v1/attempts/batch' : '/v1/attempts',
        label: `invalid#${i}`,
        headers: auth(json),
        body: Buffer.from(JSON.stringify(m)),
      };
    }
    default: {
      // Authenticated, wrong routes, methods and parameters.
      const [method, path] = pick<[string, string]>([
        ['GET', '/'],
        ['GET', '/v1'],
        ['GET', '/v1/attempts'],
        ['PUT', '/v1/attempts'],
        ['DELETE', '/v1/attempts/a1'],
        ['GET', '/v1/attempts/a1/cancel'],
        ['POST', '/v1/health'],
        ['GET', '/v1/attempts/revoke'],
        ['PUT', '/v1/attempts/revoke'],
        ['GET', '/v1/attempts/%ZZ'],
        ['GET', '/v1/attempts/a%20b/log'],
        ['GET', '/v1/attempts/unknown-7/log'],
        ['GET', '/v1/attempts/unknown-7/log?offset=abc'],
        ['GET', '/v1/attempts/unknown-7/log?follow=maybe'],
        ['POST', '/v1/attempts/unknown-7/cancel'],
        ['GET', `/v1/${'x/'.repeat(500)}`],
      ]);
      return {
        kind: 'http',
        label: `route#${i} ${method} ${path.slice(0, 40)}`,
        method,
        path,
        headers: auth({}),
      };
    }
  }
}

function sendRaw(bytes: Buffer): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1');
    const chunks: Buffer[] = [];
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error('no answer within 10s'));
    }, 10_000);
    socket.on('data', (c) => chunks.push(c));
    socket.on('error', () => {}); // a reset after the answer is fine: the answer is what we check
    socket.on('close', () => {
      clearTimeout(timer);
      resolve(Buffer.concat(chunks).toString('latin1'));
    });
    socket.write(bytes);
  });
}

function sendHttp(
  agent: Agent,
  p: Extract<Probe, { kind: 'http' }>,
): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(
      { host: '127.0.0.1', port, method: p.method, path: p.path, headers: p.headers, agent, timeout: 10_000 },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString() }));
        res.on('error', reject);
      },
    );
    req.on('timeout', () => req.destroy(new Error('no answer within 10s')));
    // The server may answer (413, 401) and close before the whole body is sent: that is fine.
    req.on('error', (err) => ((err as NodeJS.ErrnoException).code === 'EPIPE' ? undefined : reject(err)));
    req.end(p.body);
  });
}

test(`${TOTAL} malformed or unauthenticated requests: each gets a 4xx JSON error, the worker stays up, no task runs`, async () => {
  const agent = new Agent({ keepAlive: true, maxSockets: CONCURRENCY });
  const r = prng(20261121);
  const statuses = new Map<number, number>();
  const failures: string[] = [];
  let next = 0;
  const lane = async () => {
    for (let i = next++; i < TOTAL; i = next++) {
      const p = probe(i, r);
      try {
        let status: number;
        let body: string;
        if (p.kind === 'raw') {
          const answer = await sendRaw(p.bytes);
          const m = /^HTTP\/1\.1 (\d{3}) [^\r\n]*\r\n[\s\S]*?\r\n\r\n([\s\S]*)$/.exec(answer);
          status = Number(m?.[1] ?? 0);
          body = m?.[2] ?? answer;
        } else {
          ({ status, body } = await sendHttp(agent, p));
        }
        statuses.set(status, (statuses.get(status) ?? 0) + 1);
        let code: unknown;
        try {
          code = JSON.parse(body).error?.code;
        } catch {}
        if (status < 400 || status > 499 || typeof code !== 'string') {
          failures.push(`${p.label}: status ${status}, body ${body.slice(0, 160)}`);
        }
      } catch (err) {
        failures.push(`${p.label}: ${(err as Error).message}`);
      }
    }
  };
  await Promise.all(Array.from({ length: CONCURRENCY }, lane));
  agent.destroy();

  expect(failures.slice(0, 20)).toEqual([]);
  expect([...statuses.values()].reduce((a, b) => a + b, 0)).toBe(TOTAL);
  // The mix reached every kind of refusal.
  for (const status of [400, 401, 404, 405, 413, 415, 431])
    expect(statuses.get(status), `status ${status}`).toBeGreaterThan(0);

  // No task ran: the executor started nothing, no marker, no log file.
  expect(executor.started).toBe(0);
  expect(existsSync(marker)).toBe(false);
  expect(readdirSync(join(dir.path, 'logs'))).toEqual([]);

  // The worker is still up and serving: an authenticated dispatch runs.
  const ok = validDispatch();
  const res = await fetch(`http://127.0.0.1:${port}/v1/attempts`, {
    method: 'POST',
    headers: {
      authorization: `Bearer ${SECRET}`,
      'content-type': 'application/json',
      [PROTOCOL_HEADER]: String(PROTOCOL_VERSION),
    },
    body: JSON.stringify(ok),
  });
  expect(res.status).toBe(202);
  expect((await executor.result(ok.attemptId))?.state).toBe('succeeded');
  expect(existsSync(marker)).toBe(true);
  // Nothing was revoked either: the attempts the refused revokes named still start.
  for (const attemptId of ['rv-1', 'rv-2', 'x1']) {
    const again = await fetch(`http://127.0.0.1:${port}/v1/attempts`, {
      method: 'POST',
      headers: {
        authorization: `Bearer ${SECRET}`,
        'content-type': 'application/json',
        [PROTOCOL_HEADER]: String(PROTOCOL_VERSION),
      },
      body: JSON.stringify(attemptRequest({ type: 'noop' }, { attemptId, dispatchSeq: 1 })),
    });
    expect([attemptId, again.status]).toEqual([attemptId, 202]);
  }
}, 180_000);
