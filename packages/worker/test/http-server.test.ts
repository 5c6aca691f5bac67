import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  type AttemptRequest,
  attemptSnapshotSchema,
  PROTOCOL_HEADER,
  PROTOCOL_VERSION,
} from '@sched/protocol';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { TaskExecutor } from '../src/executor/task-executor.js';
import { WorkerHttpServer } from '../src/http/worker-http-server.js';
import { LogStore } from '../src/logs/log-store.js';
import { attemptRequest, tempDir } from './helpers.js';

const SECRET = 'cluster-secret-for-tests-0123456789';
let dir: Awaited<ReturnType<typeof tempDir>>;
let executor: TaskExecutor;
let server: WorkerHttpServer;
let base: string;
let workerKey: string;
/** This worker's current registration (the czxid of its znode), as WorkerNode gives it. */
let registration: string | null = '377';

async function call(method: string, path: string, body?: unknown, headers: Record<string, string> = {}) {
  const res = await fetch(`${base}${path}`, {
    method,
    headers: {
      authorization: `Bearer ${SECRET}`,
      [PROTOCOL_HEADER]: String(PROTOCOL_VERSION),
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
  executor = new TaskExecutor({
    capacity: 2,
    backlog: 0,
    killGraceMs: 200,
    logs,
    workDir: join(dir.path, 'work'),
  });
  server = new WorkerHttpServer({
    executor,
    logs,
    secret: SECRET,
    nodeKey: () => workerKey,
    registration: () => registration,
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

  test('GET /v1/attempts/{id}?worker=KEY (a master reconciling) answers the protocol snapshot for this incarnation, 404 for an unknown attempt, 409 for another incarnation', async () => {
    const req = attemptRequest({ type: 'shell', command: 'echo asked' }, { worker: workerKey });
    expect((await call('POST', '/v1/attempts', req)).status).toBe(202);
    await executor.result(req.attemptId);
    const mine = await call('GET', `/v1/attempts/${req.attemptId}?worker=${encodeURIComponent(workerKey)}`);
    expect(mine.status).toBe(200);
    const parsed = attemptSnapshotSchema.parse(mine.json);
    expect(parsed).toMatchObject({ attemptId: req.attemptId, state: 'succeeded', result: { exitCode: 0 } });
    expect(parsed.result?.logTail).toContain('asked');
    const unknown = await call('GET', `/v1/attempts/never-here-1?worker=${encodeURIComponent(workerKey)}`);
    expect([unknown.status, unknown.json.error.code]).toEqual([404, 'NOT_FOUND']);
    // Another incarnation at this address must not say "not known" for the one the master means.
    const other = workerKey.replace(/_\d+$/, '_1600000000000');
    const wrong = await call('GET', `/v1/attempts/${req.attemptId}?worker=${encodeURIComponent(other)}`);
    expect([wrong.status, wrong.json.error.code]).toEqual([409, 'WRONG_INCARNATION']);
  });

  test('a dispatch meant for another incarnation of this address is refused (409)', async () => {
    const req = attemptRequest({ type: 'noop' }, { worker: workerKey.replace(/_\d+$/, '_1600000000000') });
    const r = await call('POST', '/v1/attempts', req);
    expect(r.status).toBe(409);
    expect(r.json.error.code).toBe('WRONG_INCARNATION');
  });

  describe('registration (the worker lost its ZooKeeper session and registered again)', () => {
    /** A dispatch whose shell task appends to a marker file: the file says whether it ran. */
    function marked(name: string, extra: Partial<AttemptRequest> = {}) {
      const mark = join(dir.path, name);
      const req = attemptRequest(
        { type: 'shell', command: 'echo ran >> "$MARK"' },
        { params: { MARK: mark }, worker: workerKey, ...extra },
      );
      return { mark, req };
    }

    test('a dispatch addressed to an earlier registration is refused (409 WRONG_REGISTRATION) and nothing runs; the current one, null or none is accepted', async () => {
      const { mark, req } = marked('registration-old', { registration: '340' });
      const started = executor.started;
      const r = await call('POST', '/v1/attempts', req);
      expect([r.status, r.json]).toEqual([
        409,
        {
          error: {
            code: 'WRONG_REGISTRATION',
            message: `attempt ${req.attemptId} was dispatched to registration 340 of worker ${workerKey}, but this worker is now registration 377 (it lost its ZooKeeper session and registered again); not started`,
          },
        },
      ]);
      expect(executor.started).toBe(started);
      expect(executor.snapshot(req.attemptId)).toBeUndefined();

      for (const [name, extra] of [
        ['registration-current', { registration: '377' }],
        ['registration-zeros', { registration: '000377' }],
        ['registration-null', { registration: null }],
        ['registration-absent', {}],
      ] as const) {
        const ok = marked(name, extra);
        const body: Record<string, unknown> = { ...ok.req };
        if (!('registration' in extra)) delete body.registration;
        const accepted = await call('POST', '/v1/attempts', body);
        expect([name, accepted.status, accepted.json.accepted]).toEqual([name, 202, true]);
        await executor.result(ok.req.attemptId);
        expect(readFileSync(ok.mark, 'utf8')).toBe('ran\n');
      }

      // Refused in a batch too, item by item: the others start.
      const ok = marked('registration-batch-ok', { registration: '377' });
      const batch = await call('POST', '/v1/attempts/batch', { attempts: [req, ok.req] });
      expect(batch.status).toBe(200);
      expect(batch.json.results).toEqual([
        { status: 409, error: expect.objectContaining({ code: 'WRONG_REGISTRATION' }) },
        { status: 202, attemptId: ok.req.attemptId, accepted: true, state: 'running', result: null },
      ]);
      await executor.result(ok.req.attemptId);
      expect(readFileSync(ok.mark, 'utf8')).toBe('ran\n');
      expect(executor.snapshot(req.attemptId)).toBeUndefined();
      expect(existsSync(mark)).toBe(false);
    });

    test('a registration newer than the one the worker knows is refused too (it is registering again)', async () => {
      const { mark, req } = marked('registration-newer', { registration: '400' });
      const r = await call('POST', '/v1/attempts', req);
      expect([r.status, r.json.error]).toEqual([
        409,
        {
          code: 'WRONG_REGISTRATION',
          message: `attempt ${req.attemptId} was dispatched to registration 400 of worker ${workerKey}, but this worker is still registration 377 (it is registering again); not started`,
        },
      ]);
      expect(executor.snapshot(req.attemptId)).toBeUndefined();
      expect(existsSync(mark)).toBe(false);
    });

    test('checked only once the worker knows its registration', async () => {
      registration = null;
      try {
        const before = marked('registration-unknown', { registration: '340' });
        expect((await call('POST', '/v1/attempts', before.req)).status).toBe(202);
        await executor.result(before.req.attemptId);
        expect(readFileSync(before.mark, 'utf8')).toBe('ran\n');
      } finally {
        registration = '377';
      }
      const after = marked('registration-known', { registration: '340' });
      expect((await call('POST', '/v1/attempts', after.req)).json.error?.code).toBe('WRONG_REGISTRATION');
      expect(existsSync(after.mark)).toBe(false);
    });

    test('a malformed registration is refused with the field named (400); nothing runs', async () => {
      const started = executor.started;
      for (const bad of [340, '', '-1', '3 40', '0x1f', '1'.repeat(20), true, ['340']]) {
        const { req } = marked('registration-bad', { registration: bad as unknown as string });
        const r = await call('POST', '/v1/attempts', req);
        expect([JSON.stringify(bad), r.status, r.json.error.code]).toEqual([
          JSON.stringify(bad),
          400,
          'REQUEST_INVALID',
        ]);
        expect(r.json.error.issues.map((i: { path: string }) => i.path)).toEqual(['registration']);
      }
      const { req } = marked('registration-bad-batch');
      const batch = await call('POST', '/v1/attempts/batch', {
        attempts: [req, { ...req, attemptId: `${req.attemptId}-2`, registration: '12a' }],
      });
      expect([batch.status, batch.json.error.issues]).toEqual([
        400,
        [
          {
            path: 'attempts[1].registration',
            message:
              '"12a" is not accepted; expected the czxid of the worker’s registration znode in decimal (1 to 19 digits), or null',
          },
        ],
      ]);
      expect(executor.started).toBe(started);
    });
  });

  test('a master of another protocol version (or none) is refused with PROTOCOL_MISMATCH naming both; nothing starts', async () => {
    const started = executor.started;
    for (const version of [undefined, '0', '2']) {
      const res = await fetch(`${base}/v1/attempts`, {
        method: 'POST',
        headers: {
          authorization: `Bearer ${SECRET}`,
          'content-type': 'application/json',
          ...(version === undefined ? {} : { [PROTOCOL_HEADER]: version }),
        },
        body: JSON.stringify(attemptRequest({ type: 'noop' })),
      });
      expect(res.status).toBe(400);
      const body = (await res.json()) as { error: { code: string; message: string } };
      expect(body.error.code).toBe('PROTOCOL_MISMATCH');
      expect(body.error.message).toContain(`this worker speaks ${PROTOCOL_VERSION}`);
      expect(body.error.message).toContain(
        version === undefined ? 'no X-Sched-Protocol header' : `"${version}"`,
      );
    }
    expect(executor.started).toBe(started);
  });

  test('with its process slots taken and no backlog the worker refuses a shell task with 429 (a noop still runs); draining with 503', async () => {
    const long = [1, 2].map(() => attemptRequest({ type: 'shell', command: 'sleep 300' }));
    for (const l of long) expect((await call('POST', '/v1/attempts', l)).status).toBe(202);
    const refused = await call('POST', '/v1/attempts', attemptRequest({ type: 'shell', command: 'true' }));
    expect(refused.status).toBe(429);
    expect(refused.json.error).toMatchObject({ code: 'WORKER_AT_CAPACITY' });
    expect((await call('POST', '/v1/attempts', attemptRequest({ type: 'noop' }))).status).toBe(202);
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

  describe('revoke (a master lost the answer to a dispatch)', () => {
    /** A dispatch whose shell task appends to a marker file: the file says how often it ran. */
    function marked(name: string, dispatchSeq: number) {
      const mark = join(dir.path, name);
      const req = attemptRequest(
        { type: 'shell', command: 'echo ran >> "$MARK"' },
        { params: { MARK: mark }, worker: workerKey, dispatchSeq },
      );
      return { mark, req };
    }
    const revoke = (
      attempts: { attemptId: string; dispatchSeq: number }[],
      worker: string | null = workerKey,
    ) => call('POST', '/v1/attempts/revoke', { worker, attempts });

    test('an unknown attempt is revoked: its dispatch is refused (409) and never runs; a later assignment runs', async () => {
      const { mark, req } = marked('revoke-http-1', 2);
      const other = marked('revoke-http-2', 1);
      const started = executor.started;
      const r = await revoke([
        { attemptId: req.attemptId, dispatchSeq: 2 },
        { attemptId: other.req.attemptId, dispatchSeq: 1 },
      ]);
      expect([r.status, r.json]).toEqual([
        200,
        {
          results: [
            { attemptId: req.attemptId, state: 'revoked' },
            { attemptId: other.req.attemptId, state: 'revoked' },
          ],
        },
      ]);
      // The late copy of the lost request arrives.
      const late = await call('POST', '/v1/attempts', req);
      expect([late.status, late.json]).toEqual([
        409,
        {
          error: {
            code: 'ATTEMPT_REVOKED',
            message: `attempt ${req.attemptId} (dispatch 2) was revoked on this worker: a master found it was not delivered and gave it to another worker; not started`,
          },
        },
      ]);
      // In a batch, the revoked item is refused on its own; the others start.
      const fresh = marked('revoke-http-3', 0);
      const batch = await call('POST', '/v1/attempts/batch', { attempts: [other.req, fresh.req] });
      expect(batch.status).toBe(200);
      expect(batch.json.results).toEqual([
        { status: 409, error: expect.objectContaining({ code: 'ATTEMPT_REVOKED' }) },
        { status: 202, attemptId: fresh.req.attemptId, accepted: true, state: 'running', result: null },
      ]);
      await executor.result(fresh.req.attemptId);
      expect(executor.started).toBe(started + 1);
      expect((await call('GET', `/v1/attempts/${req.attemptId}`)).status).toBe(404);
      expect([existsSync(mark), existsSync(other.mark), readFileSync(fresh.mark, 'utf8')]).toEqual([
        false,
        false,
        'ran\n',
      ]);
      // The master gives the attempt to this worker again later: a higher seq starts.
      const again = await call('POST', '/v1/attempts', { ...req, dispatchSeq: 3 });
      expect([again.status, again.json.accepted]).toEqual([202, true]);
      expect(await executor.result(req.attemptId)).toMatchObject({ state: 'succeeded' });
      expect(readFileSync(mark, 'utf8')).toBe('ran\n');
      // Revoking it now revokes nothing: it answers the state.
      expect((await revoke([{ attemptId: req.attemptId, dispatchSeq: 3 }])).json).toEqual({
        results: [{ attemptId: req.attemptId, state: 'succeeded' }],
      });
    });

    test('a running attempt is not revoked: the answer is its state, and it runs on to the end', async () => {
      const gate = join(dir.path, 'revoke-gate');
      const req = attemptRequest(
        { type: 'shell', command: `while [ ! -e "${gate}" ]; do sleep 0.02; done; echo through` },
        { worker: workerKey, dispatchSeq: 5 },
      );
      expect((await call('POST', '/v1/attempts', req)).status).toBe(202);
      const unknown = attemptRequest({ type: 'noop' }, { worker: workerKey, dispatchSeq: 5 });
      const r = await revoke(
        [
          { attemptId: req.attemptId, dispatchSeq: 5 },
          { attemptId: unknown.attemptId, dispatchSeq: 5 },
        ],
        null,
      );
      expect([r.status, r.json]).toEqual([
        200,
        {
          results: [
            { attemptId: req.attemptId, state: 'running' },
            { attemptId: unknown.attemptId, state: 'revoked' },
          ],
        },
      ]);
      expect(executor.snapshot(req.attemptId)?.state).toBe('running');
      writeFileSync(gate, '');
      expect(await executor.result(req.attemptId)).toMatchObject({
        state: 'succeeded',
        logTail: expect.stringContaining('through'),
      });
      // A resent copy of its dispatch is answered as before.
      expect((await call('POST', '/v1/attempts', req)).json).toMatchObject({
        accepted: false,
        state: 'succeeded',
      });
    });

    test('a revoke addressed to another incarnation is refused whole (409); nothing is revoked', async () => {
      const { mark, req } = marked('revoke-http-wrong', 1);
      const r = await revoke(
        [{ attemptId: req.attemptId, dispatchSeq: 1 }],
        workerKey.replace(/_\d+$/, '_1600000000000'),
      );
      expect(r.status).toBe(409);
      expect(r.json.error).toMatchObject({
        code: 'WRONG_INCARNATION',
        message: expect.stringContaining(`this worker is ${workerKey}`),
      });
      const dispatched = await call('POST', '/v1/attempts', req);
      expect(dispatched.status).toBe(202);
      await executor.result(req.attemptId);
      expect(readFileSync(mark, 'utf8')).toBe('ran\n');
    });

    test('a malformed revoke is refused whole (400, the field named); nothing is revoked', async () => {
      const { req } = marked('revoke-http-bad', 1);
      const valid = { attemptId: req.attemptId, dispatchSeq: 1 };
      const cases: [unknown, string[]][] = [
        [[valid], ['(body)']],
        [{ worker: workerKey }, ['attempts']],
        [{ worker: workerKey, attempts: [] }, ['attempts']],
        [{ worker: 7, attempts: [valid] }, ['worker']],
        [
          { worker: workerKey, attempts: [valid, { attemptId: 'b1', dispatchSeq: -1 }] },
          ['attempts[1].dispatchSeq'],
        ],
        [
          { worker: workerKey, attempts: [valid, { attemptId: 'b1', dispatchSeq: '2' }] },
          ['attempts[1].dispatchSeq'],
        ],
        [
          { worker: workerKey, attempts: [valid, { attemptId: 'b 1', dispatchSeq: 0 }] },
          ['attempts[1].attemptId'],
        ],
        [
          { worker: workerKey, attempts: [valid, { attemptId: 'b1' }, null] },
          ['attempts[1].dispatchSeq', 'attempts[2]'],
        ],
      ];
      for (const [body, paths] of cases) {
        const r = await call('POST', '/v1/attempts/revoke', body);
        expect([JSON.stringify(body), r.status, r.json.error.code]).toEqual([
          JSON.stringify(body),
          400,
          'REQUEST_INVALID',
        ]);
        expect(r.json.error.issues.map((i: { path: string }) => i.path)).toEqual(paths);
        expect(r.json.error.message).toContain(`${paths[0]}: `);
      }
      const tooMany = Array.from({ length: 1001 }, (_, i) => ({ attemptId: `many-${i}`, dispatchSeq: 0 }));
      const big = await call('POST', '/v1/attempts/revoke', { worker: null, attempts: tooMany });
      expect([big.status, big.json.error.message]).toEqual([
        400,
        'invalid request: attempts: expected 1..1000 attempts, got 1001',
      ]);
      // None of them revoked the valid item.
      expect((await call('POST', '/v1/attempts', req)).status).toBe(202);
      await executor.result(req.attemptId);
    });

    test('`revoke` and `batch` are routes, never attempt ids', async () => {
      for (const path of ['/v1/attempts/revoke', '/v1/attempts/batch']) {
        const r = await call('GET', path);
        expect([path, r.status, r.json.error.code, r.headers.get('allow')]).toEqual([
          path,
          405,
          'METHOD_NOT_ALLOWED',
          'POST',
        ]);
      }
      expect((await call('GET', '/v1/attempts/revoke/log')).status).toBe(404);
      expect((await call('POST', '/v1/attempts/revoked/cancel')).json.error.message).toBe(
        'attempt revoked is not known on this worker',
      );
    });
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
