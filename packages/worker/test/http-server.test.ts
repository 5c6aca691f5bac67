import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { TaskExecutor } from '../src/executor/task-executor.js';
import { WorkerHttpServer } from '../src/http/worker-http-server.js';
import { LogStore } from '../src/logs/log-store.js';
import { attemptRequest, tempDir } from './helpers.js';

const SECRET = 'cluster-secret-for-tests';
let dir: Awaited<ReturnType<typeof tempDir>>;
let executor: TaskExecutor;
let server: WorkerHttpServer;
let base: string;
let workerKey: string;

async function call(method: string, path: string, body?: unknown, headers: Record<string, string> = {}) {
  const res = await fetch(`${base}${path}`, {
    method,
    headers: {
      authorization: `Bearer ${SECRET}`,
      ...(body === undefined ? {} : { 'content-type': 'application/json' }),
      ...headers,
    },
    body: body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body),
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

beforeAll(async () => {
  dir = await tempDir('http');
  const logs = new LogStore({ dir: join(dir.path, 'logs') });
  executor = new TaskExecutor({ capacity: 2, killGraceMs: 200, logs, workDir: join(dir.path, 'work') });
  server = new WorkerHttpServer({
    executor,
    logs,
    secret: SECRET,
    workerKey: () => workerKey,
    maxBodyBytes: 64 * 1024,
    publicGet: { '/metrics': (_req, res) => void res.end('sched_worker_running_tasks 0\n') },
  });
  const { port } = await server.listen(0);
  workerKey = `127.0.0.1:${port}_1700000000000`;
  base = `http://127.0.0.1:${port}`;
});
afterAll(async () => {
  await executor.killAll('test over');
  await server.close();
  await dir.remove();
});

describe('worker HTTP endpoint', () => {
  test('health answers with capacity and identity', async () => {
    const r = await call('GET', '/v1/health');
    expect(r.status).toBe(200);
    expect(r.json).toMatchObject({ status: 'ok', key: workerKey, running: 0, capacity: 2, draining: false });
  });

  test('dispatch starts an attempt (202); the same attempt again is answered, not re-run (200)', async () => {
    const req = attemptRequest({ type: 'shell', command: 'echo hi' }, { worker: workerKey });
    const first = await call('POST', '/v1/attempts', req);
    expect(first.status).toBe(202);
    expect(first.json).toEqual({ attemptId: req.attemptId, accepted: true, state: 'running', result: null });
    await executor.result(req.attemptId);
    const again = await call('POST', '/v1/attempts', req);
    expect(again.status).toBe(200);
    expect(again.json).toMatchObject({ accepted: false, state: 'succeeded', result: { exitCode: 0 } });
    const status = await call('GET', `/v1/attempts/${req.attemptId}`);
    expect(status.json).toMatchObject({ attemptId: req.attemptId, state: 'succeeded' });
  });

  test('a dispatch meant for another incarnation of this address is refused (409)', async () => {
    const req = attemptRequest({ type: 'noop' }, { worker: workerKey.replace(/_\d+$/, '_1600000000000') });
    const r = await call('POST', '/v1/attempts', req);
    expect(r.status).toBe(409);
    expect(r.json.error.code).toBe('WRONG_INCARNATION');
  });

  test('at capacity the worker refuses with 429; draining with 503', async () => {
    const long = [1, 2].map(() => attemptRequest({ type: 'shell', command: 'sleep 300' }));
    for (const l of long) expect((await call('POST', '/v1/attempts', l)).status).toBe(202);
    const refused = await call('POST', '/v1/attempts', attemptRequest({ type: 'noop' }));
    expect(refused.status).toBe(429);
    expect(refused.json.error).toMatchObject({ code: 'WORKER_AT_CAPACITY' });
    // Cancel through the endpoint, then the slot is free again.
    const cancelled = await call('POST', `/v1/attempts/${long[0]?.attemptId}/cancel`, {
      reason: 'operator said so',
    });
    expect(cancelled.json).toEqual({ attemptId: long[0]?.attemptId, state: 'running' });
    expect(await executor.result(long[0]?.attemptId as string)).toMatchObject({
      state: 'killed',
      error: 'operator said so',
    });
    expect((await call('POST', `/v1/attempts/${long[1]?.attemptId}/cancel`)).status).toBe(200);
    await executor.whenIdle();
    expect((await call('POST', '/v1/attempts/nope-1/cancel')).status).toBe(404);
  });

  test('batch dispatch: per-attempt outcomes; a malformed item refuses the whole batch', async () => {
    const a = attemptRequest({ type: 'noop' });
    const b = attemptRequest({ type: 'noop' });
    const ok = await call('POST', '/v1/attempts/batch', { attempts: [a, b, a] });
    expect(ok.status).toBe(200);
    expect(ok.json.results.map((r: { status: number }) => r.status)).toEqual([202, 202, 200]);
    const started = executor.started;
    const c = attemptRequest({ type: 'noop' });
    const bad = await call('POST', '/v1/attempts/batch', { attempts: [c, { ...c, attemptId: 'x y' }] });
    expect(bad.status).toBe(400);
    expect(bad.json.error.issues[0].path).toBe('attempts[1].attemptId');
    expect(executor.started).toBe(started);
  });

  test('the log of a running attempt streams live over chunked HTTP until it ends', async () => {
    const gate = join(dir.path, 'gate');
    const req = attemptRequest({
      type: 'shell',
      command: `echo one; while [ ! -e "${gate}" ]; do sleep 0.05; done; echo two`,
    });
    await call('POST', '/v1/attempts', req);
    const res = await fetch(`${base}/v1/attempts/${req.attemptId}/log`, {
      headers: { authorization: `Bearer ${SECRET}` },
    });
    expect(res.status).toBe(200);
    expect(res.headers.get('transfer-encoding')).toBe('chunked');
    const reader = (res.body as ReadableStream<Uint8Array>).getReader();
    let text = '';
    while (!text.includes('one\n')) text += Buffer.from((await reader.read()).value ?? []).toString();
    expect(executor.snapshot(req.attemptId)?.state).toBe('running');
    const { writeFileSync } = await import('node:fs');
    writeFileSync(gate, '');
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      text += Buffer.from(value).toString();
    }
    expect(text).toMatch(/one\n[\s\S]*two\n[\s\S]*attempt succeeded/);
    const partial = await call('GET', `/v1/attempts/${req.attemptId}/log?offset=4&follow=false`);
    expect(partial.text.startsWith(text.slice(4, 40))).toBe(true);
  });

  test('without follow, the whole current log is sent, however large', async () => {
    const req = attemptRequest({ type: 'shell', command: 'head -c 300000 /dev/zero | tr "\\0" x' });
    await call('POST', '/v1/attempts', req);
    await executor.result(req.attemptId);
    const { readFileSync } = await import('node:fs');
    const file = readFileSync(join(dir.path, 'logs', `${req.attemptId}.log`), 'utf8');
    expect(file.length).toBeGreaterThan(300_000);
    const r = await call('GET', `/v1/attempts/${req.attemptId}/log?follow=false`);
    expect(r.text).toBe(file);
    const noop = attemptRequest({ type: 'noop' });
    await call('POST', '/v1/attempts', noop);
    const empty = await call('GET', `/v1/attempts/${noop.attemptId}/log`);
    expect([empty.status, empty.text]).toEqual([200, '']);
  });

  test('only the configured public GET paths answer without the secret', async () => {
    const open = await fetch(`${base}/metrics?x=1`);
    expect([open.status, await open.text()]).toEqual([200, 'sched_worker_running_tasks 0\n']);
    expect((await fetch(`${base}/metrics`, { method: 'POST' })).status).toBe(401);
    expect((await fetch(`${base}/metrics/more`)).status).toBe(401);
    expect((await fetch(`${base}/v1/health`)).status).toBe(401);
  });

  test('errors are clear 4xx JSON', async () => {
    const cases: [string, string, unknown, Record<string, string>, number, string][] = [
      ['GET', '/v1/health', undefined, { authorization: 'Bearer wrong' }, 401, 'UNAUTHENTICATED'],
      ['GET', '/v1/health', undefined, { authorization: '' }, 401, 'UNAUTHENTICATED'],
      ['POST', '/v1/attempts', '{"attemptId":', {}, 400, 'BAD_JSON'],
      ['POST', '/v1/attempts', '{}', { 'content-type': 'text/plain' }, 415, 'UNSUPPORTED_MEDIA_TYPE'],
      ['POST', '/v1/attempts', 'x'.repeat(70 * 1024), {}, 413, 'BODY_TOO_LARGE'],
      ['POST', '/v1/attempts', { attemptId: 'a' }, {}, 400, 'REQUEST_INVALID'],
      ['GET', '/v1/attempts', undefined, {}, 405, 'METHOD_NOT_ALLOWED'],
      ['GET', '/v2/whatever', undefined, {}, 404, 'NOT_FOUND'],
      ['GET', '/v1/attempts/unknown-1', undefined, {}, 404, 'NOT_FOUND'],
      ['GET', '/v1/attempts/%E0%A4%A/log', undefined, {}, 400, 'REQUEST_INVALID'],
      ['GET', '/v1/attempts/a1/log?offset=-1', undefined, {}, 400, 'REQUEST_INVALID'],
    ];
    for (const [method, path, body, headers, status, code] of cases) {
      const r = await call(method, path, body, headers);
      expect([path, r.status, r.json?.error?.code]).toEqual([path, status, code]);
      expect(r.headers.get('content-type')).toBe('application/json; charset=utf-8');
      expect(typeof r.json.error.message).toBe('string');
    }
  });

  test('a worker without a cluster secret does not start its endpoint', () => {
    expect(
      () => new WorkerHttpServer({ executor, logs: new LogStore({ dir: join(dir.path, 'l2') }), secret: '' }),
    ).toThrow(/SCHED_CLUSTER_SECRET/);
  });
});
