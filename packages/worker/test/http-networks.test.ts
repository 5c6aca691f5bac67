import { createServer, type IncomingMessage, type Server } from 'node:http';
import { type AddressInfo, Socket } from 'node:net';
import { join } from 'node:path';
import { loadConfig } from '@sched/core';
import type { HttpTask } from '@sched/protocol';
import { afterAll, afterEach, beforeAll, describe, expect, test, vi } from 'vitest';
import { DEFAULT_HTTP_DENY_NETWORKS, HttpNetworkPolicy } from '../src/executor/http-networks.js';
import type { HostResolver } from '../src/executor/http-request.js';
import { TaskExecutor, type TaskExecutorOptions } from '../src/executor/task-executor.js';
import { LogStore } from '../src/logs/log-store.js';
import { attemptRequest, tempDir } from './helpers.js';

/**
 * http tasks and the worker's network policy (docs/tasks.md#which-networks-an-http-task-may-reach),
 * against a real HTTP server on 127.0.0.1. Every socket connect in this process is recorded, so a
 * test can show that nothing was dialled to a refused address (the sandbox has only loopback: a
 * dial to 169.254.169.254 would hang or fail with a network error, not name the denied network).
 */

const METADATA = 'http://169.254.169.254/latest/meta-data/';
const REFUSED_METADATA =
  'http task refused: 169.254.169.254 is in a denied network (169.254.0.0/16, worker.httpDenyNetworks)';

let dir: Awaited<ReturnType<typeof tempDir>>;
let logs: LogStore;
let server: Server;
let port: number;
let base: string;
const seen: { url: string; method: string; body: string; headers: IncomingMessage['headers'] }[] = [];

/** Hosts every socket in this process was asked to connect to (host, as given, and port). */
const dialled: string[] = [];
const realConnect = Socket.prototype.connect;

beforeAll(async () => {
  dir = await tempDir('http-networks');
  logs = new LogStore({ dir: join(dir.path, 'logs'), tailBytes: 4096, maxBytesPerAttempt: 65536 });
  server = createServer((req, res) => {
    let body = '';
    req.on('data', (c) => (body += c));
    req.on('end', () => {
      const url = req.url ?? '/';
      seen.push({ url, method: req.method ?? '', body, headers: req.headers });
      const redirect = (status: number, location: string) => {
        res.writeHead(status, { location });
        res.end(`go to ${location}`);
      };
      if (url === '/to-metadata') return redirect(302, METADATA);
      if (url === '/to-metadata-by-name') return redirect(307, `http://metadata.test${METADATA.slice(22)}`);
      if (url === '/to-mapped') return redirect(301, 'http://[::ffff:169.254.169.254]/');
      if (url === '/to-file') return redirect(302, 'file:///etc/passwd');
      if (url === '/hop1') return redirect(301, '/hop2');
      if (url === '/hop2') return redirect(302, `http://echo.test:${port}/ok`);
      if (url === '/see-other') return redirect(303, '/ok');
      if (url === '/temporary') return redirect(307, '/ok');
      if (url.startsWith('/loop')) return redirect(302, `/loop${Number(url.slice(5) || 0) + 1}`);
      res.end(`answer to ${url}`);
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  port = (server.address() as AddressInfo).port;
  base = `http://127.0.0.1:${port}`;
  vi.spyOn(Socket.prototype, 'connect').mockImplementation(function (this: Socket, ...args: unknown[]) {
    const o = args[0] as { host?: string; port?: number } | unknown[];
    const opts = (Array.isArray(o) ? o[0] : o) as { host?: string; port?: number; path?: unknown };
    // TCP only (an IPC connect has a path; an HTTP request's options carry `path: null`).
    if (opts && typeof opts === 'object' && typeof opts.path !== 'string') {
      dialled.push(`${opts.host}:${opts.port}`);
    }
    return (realConnect as (...a: unknown[]) => Socket).apply(this, args);
  });
});
afterAll(async () => {
  vi.restoreAllMocks();
  server.closeAllConnections();
  server.close();
  await dir.remove();
});
afterEach(() => {
  dialled.length = 0;
  seen.length = 0;
});

/** Host names the tests resolve themselves (the sandbox has no DNS): name → addresses. */
const names: Record<string, string[]> = {
  'echo.test': ['127.0.0.1'],
  'metadata.test': ['169.254.169.254'],
  'dual.test': ['127.0.0.1', 'fd00:ec2::254'],
};
const resolver: HostResolver = async (host) => {
  const addresses = names[host];
  if (!addresses) throw Object.assign(new Error(`getaddrinfo ENOTFOUND ${host}`), { code: 'ENOTFOUND' });
  return addresses.map((address) => ({ address, family: address.includes(':') ? 6 : 4 }));
};

function executor(extra: Partial<TaskExecutorOptions> = {}) {
  return new TaskExecutor({
    capacity: 1,
    killGraceMs: 300,
    logs,
    workDir: join(dir.path, 'work'),
    httpResolver: resolver,
    ...extra,
  });
}

function http(url: string, extra: Partial<HttpTask> = {}): HttpTask {
  return {
    type: 'http',
    url,
    method: 'GET',
    headers: {},
    body: null,
    expectedStatus: [],
    requestTimeoutMs: 10_000,
    ...extra,
  };
}

async function run(ex: TaskExecutor, task: HttpTask) {
  const req = attemptRequest(task);
  ex.submit(req);
  const result = await ex.result(req.attemptId);
  if (!result) throw new Error('no result');
  return result;
}

describe('the network policy', () => {
  test('by default: link-local and cloud metadata addresses are denied, loopback and private networks allowed', () => {
    const policy = new HttpNetworkPolicy();
    for (const address of [
      '169.254.169.254',
      '169.254.170.2',
      '169.254.0.23',
      'fe80::1',
      '[fe80::a9fe:a9fe]',
      'fd00:ec2::254',
      '100.100.100.200',
      '::ffff:169.254.169.254',
      '::ffff:a9fe:a9fe',
    ]) {
      expect(policy.check(address), address).toMatchObject({ allowed: false, reason: 'denied' });
    }
    expect(policy.check('169.254.169.254')).toEqual({
      allowed: false,
      reason: 'denied',
      network: '169.254.0.0/16',
    });
    for (const address of ['127.0.0.1', '::1', '10.1.2.3', '192.168.1.1', '100.100.100.201', '8.8.8.8']) {
      expect(policy.check(address), address).toEqual({ allowed: true });
    }
  });

  test('an allow list admits only its networks; the deny list wins over it', () => {
    const policy = new HttpNetworkPolicy({ allow: ['10.0.0.0/8', '169.254.0.0/16'], deny: ['10.9.0.0/16'] });
    expect(policy.check('10.1.2.3')).toEqual({ allowed: true });
    expect(policy.check('10.9.0.1')).toEqual({ allowed: false, reason: 'denied', network: '10.9.0.0/16' });
    expect(policy.check('127.0.0.1')).toEqual({
      allowed: false,
      reason: 'not-allowed',
      allow: ['10.0.0.0/8', '169.254.0.0/16'],
    });
    // An explicit deny list replaces the default one.
    expect(policy.check('169.254.169.254')).toEqual({ allowed: true });
    expect(() => new HttpNetworkPolicy({ deny: ['10.0.0.0/40'] })).toThrow(/invalid network "10.0.0.0\/40"/);
    expect(() => new HttpNetworkPolicy({ allow: ['intranet'] })).toThrow(/invalid network "intranet"/);
  });

  test("the worker's default is the configuration's default (worker.httpDenyNetworks)", () => {
    expect(loadConfig({ env: {} }).worker.httpDenyNetworks).toEqual([...DEFAULT_HTTP_DENY_NETWORKS]);
  });
});

describe('http tasks aimed at a denied network fail with a clear error, and nothing is dialled', () => {
  test('directly at 169.254.169.254: refused at once', async () => {
    const ex = executor();
    const t0 = performance.now();
    const result = await run(ex, http(METADATA));
    expect(performance.now() - t0).toBeLessThan(1_000);
    expect(result).toMatchObject({ state: 'failed', httpStatus: null, error: REFUSED_METADATA });
    expect(result.logTail).toContain(REFUSED_METADATA);
    expect(dialled).toEqual([]);
  });

  test('through a redirect from a real server on 127.0.0.1: the redirect is checked before it is followed', async () => {
    const ex = executor();
    const result = await run(ex, http(`${base}/to-metadata`));
    expect(result).toMatchObject({
      state: 'failed',
      httpStatus: null,
      error: `${REFUSED_METADATA}; redirect 1 to ${METADATA}`,
    });
    expect(result.logTail).toContain(`HTTP 302 Found: redirect to ${METADATA}`);
    expect(seen.map((s) => s.url)).toEqual(['/to-metadata']);
    expect(dialled).toEqual([`127.0.0.1:${port}`]);
  });

  test('through a redirect to a host name that resolves to it, and to an IPv4-mapped IPv6 literal', async () => {
    const ex = executor();
    const byName = await run(ex, http(`${base}/to-metadata-by-name`));
    expect(byName).toMatchObject({
      state: 'failed',
      error:
        'http task refused: metadata.test resolves to 169.254.169.254, which is in a denied network (169.254.0.0/16, worker.httpDenyNetworks); redirect 1 to http://metadata.test/latest/meta-data/',
    });
    const mapped = await run(ex, http(`${base}/to-mapped`));
    expect(mapped.error).toBe(
      'http task refused: ::ffff:a9fe:a9fe is in a denied network (169.254.0.0/16, worker.httpDenyNetworks); redirect 1 to http://[::ffff:a9fe:a9fe]/',
    );
    expect(dialled).toEqual([`127.0.0.1:${port}`, `127.0.0.1:${port}`]);
  });

  test('a host name is refused if any address it resolves to is denied', async () => {
    const ex = executor();
    const result = await run(ex, http(`http://dual.test:${port}/ok`));
    expect(result).toMatchObject({
      state: 'failed',
      error:
        'http task refused: dual.test resolves to fd00:ec2::254, which is in a denied network (fd00:ec2::254/128, worker.httpDenyNetworks)',
    });
    expect(dialled).toEqual([]);
    expect(seen).toEqual([]);
  });

  test('a private network denied by the setting is refused, by address and by name (the real resolver)', async () => {
    const ex = executor({ httpNetworks: { deny: ['127.0.0.0/8', '::1'] }, httpResolver: undefined });
    const byAddress = await run(ex, http(`${base}/ok`));
    expect(byAddress).toMatchObject({
      state: 'failed',
      error: 'http task refused: 127.0.0.1 is in a denied network (127.0.0.0/8, worker.httpDenyNetworks)',
    });
    const byName = await run(ex, http(`http://localhost:${port}/ok`));
    expect(byName.state).toBe('failed');
    expect(byName.error).toMatch(
      /^http task refused: localhost resolves to (127\.0\.0\.1|::1), which is in a denied network \((127\.0\.0\.0\/8|::1\/128), worker\.httpDenyNetworks\)$/,
    );
    expect(seen).toEqual([]);
    expect(dialled).toEqual([]);
  });

  test('with an allow list, an address outside it is refused', async () => {
    const ex = executor({ httpNetworks: { allow: ['10.0.0.0/8'] } });
    const result = await run(ex, http(`${base}/ok`));
    expect(result.error).toBe(
      'http task refused: 127.0.0.1 is not in an allowed network (worker.httpAllowNetworks: 10.0.0.0/8)',
    );
    expect(dialled).toEqual([]);
  });
});

describe('allowed targets still work', () => {
  test('redirects are followed (relative, to a host name connected through its checked address)', async () => {
    const ex = executor();
    const result = await run(ex, http(`${base}/hop1`, { headers: { authorization: 'Bearer t' } }));
    expect(result).toMatchObject({ state: 'succeeded', httpStatus: 200, error: null });
    expect(result.logTail).toContain(`HTTP 301 Moved Permanently: redirect to ${base}/hop2`);
    expect(result.logTail).toContain(`redirect to http://echo.test:${port}/ok`);
    expect(result.logTail).toContain('answer to /ok');
    expect(result.logTail).not.toContain('go to');
    expect(seen.map((s) => [s.url, s.headers.authorization])).toEqual([
      ['/hop1', 'Bearer t'],
      ['/hop2', 'Bearer t'],
      // Another origin: the credentials stay behind.
      ['/ok', undefined],
    ]);
    expect(seen[2]?.headers.host).toBe(`echo.test:${port}`);
    // echo.test exists only in the test's resolver: the connection went to the address it checked.
    expect(dialled).toEqual([`127.0.0.1:${port}`, `127.0.0.1:${port}`, `echo.test:${port}`]);
  });

  test('a host name is resolved once per request: what is checked is what is connected to', async () => {
    let calls = 0;
    const rebinding: HostResolver = async () => {
      calls++;
      const address = calls === 1 ? '127.0.0.1' : '169.254.169.254';
      return [{ address, family: 4 }];
    };
    const ex = executor({ httpResolver: rebinding });
    const result = await run(ex, http(`http://rebind.test:${port}/ok`));
    expect(result).toMatchObject({ state: 'succeeded', httpStatus: 200 });
    expect(calls).toBe(1);
  });

  test('303 turns a POST into a GET without its body; 307 repeats the POST with it', async () => {
    const ex = executor();
    const post = { method: 'POST', body: '{"a":1}', headers: { 'content-type': 'application/json' } };
    expect(await run(ex, http(`${base}/see-other`, post))).toMatchObject({ state: 'succeeded' });
    expect(seen.map((s) => [s.url, s.method, s.body, s.headers['content-type']])).toEqual([
      ['/see-other', 'POST', '{"a":1}', 'application/json'],
      ['/ok', 'GET', '', undefined],
    ]);
    seen.length = 0;
    expect(await run(ex, http(`${base}/temporary`, post))).toMatchObject({ state: 'succeeded' });
    expect(seen.map((s) => [s.url, s.method, s.body])).toEqual([
      ['/temporary', 'POST', '{"a":1}'],
      ['/ok', 'POST', '{"a":1}'],
    ]);
  });

  test('at most 5 redirects; a redirect to another scheme fails', async () => {
    const ex = executor();
    const loop = await run(ex, http(`${base}/loop`));
    expect(loop).toMatchObject({
      state: 'failed',
      error: `HTTP request failed: more than 5 redirects (the last one from ${base}/loop5)`,
    });
    expect(seen).toHaveLength(6);
    const file = await run(ex, http(`${base}/to-file`));
    expect(file.error).toBe(
      `HTTP request failed: redirect from ${base}/to-file to file:///etc/passwd: unsupported URL scheme file: (http: or https: only)`,
    );
  });

  test('an unknown host name fails as a request error', async () => {
    const ex = executor();
    const result = await run(ex, http(`http://nowhere.test:${port}/`));
    expect(result).toMatchObject({
      state: 'failed',
      error: 'HTTP request failed: could not resolve nowhere.test: getaddrinfo ENOTFOUND nowhere.test',
    });
  });
});
