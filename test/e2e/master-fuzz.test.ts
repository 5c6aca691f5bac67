// A master refuses malformed and unauthenticated input (the worker's side:
// packages/worker/test/http-fuzz.test.ts): a real master process survives a bounded fuzz of 10,000
// malformed or unauthenticated requests — raw TCP garbage, every route without (or with a wrong)
// secret carrying otherwise valid bodies, authenticated malformed bodies for reports and the
// REST API, wrong methods and paths. Every one gets a 4xx, the process stays up and keeps
// serving, and no task runs (no run, no attempt, no marker file, no new workflow).
import { existsSync } from 'node:fs';
import { Agent, request as httpRequest } from 'node:http';
import { connect } from 'node:net';
import { join } from 'node:path';
import { PROTOCOL_HEADER, PROTOCOL_VERSION } from '@sched/protocol';
import { SeededRandom } from '@sched/testkit';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { type DaemonHandle, TestCluster } from './cluster.js';

const TOTAL = 10_000;
const CONCURRENCY = 16;

let cluster: TestCluster;
let master: DaemonHandle;
let host: string;
let port: number;
let marker: string;

beforeAll(async () => {
  cluster = await TestCluster.create();
  master = await cluster.startMaster();
  await cluster.startWorker();
  [host, port] = ((a) => [a[0] as string, Number(a[1])])(master.address.split(':'));
  marker = join(cluster.dataRoot, 'fuzz-task-ran');
  await cluster.apply({
    name: 'fuzz-target',
    tasks: [{ name: 't', type: 'shell', command: `touch ${marker}` }],
  });
}, 120_000);

afterAll(async () => {
  await cluster?.stop();
});

/** The fuzz inputs' random source: repeatable from the seed. */
function prng(seed: number): () => number {
  const random = new SeededRandom(seed);
  return () => random.next();
}

type Probe =
  | { kind: 'raw'; bytes: Buffer }
  | {
      kind: 'http';
      label: string;
      method: string;
      path: string;
      headers: Record<string, string>;
      body?: Buffer;
    };

const goodDefinition = {
  name: 'fuzz-new',
  tasks: [{ name: 'x', type: 'shell', command: `touch ${'/tmp/never'}` }],
};
const goodReport = {
  reportId: 'r1',
  seq: 1,
  kind: 'finished',
  attemptId: '1',
  runId: '1',
  taskName: 't',
  attempt: 1,
  worker: '127.0.0.1:1_1',
  at: new Date().toISOString(),
  startedAt: new Date().toISOString(),
  result: { state: 'succeeded', endedAt: new Date().toISOString() },
};

function probe(i: number, r: () => number, secret: string): Probe {
  const pick = <T>(list: readonly T[]): T => list[Math.floor(r() * list.length)] as T;
  const json = { 'content-type': 'application/json' };
  // Authenticated; reports as a worker of this protocol version sends them.
  const auth = { ...json, authorization: `Bearer ${secret}`, [PROTOCOL_HEADER]: String(PROTOCOL_VERSION) };
  switch (i % 4) {
    case 0: {
      const garbage = Buffer.from(
        Array.from({ length: 1 + Math.floor(r() * 400) }, () => Math.floor(r() * 256)),
      );
      const bytes = pick([
        Buffer.concat([garbage, Buffer.from('\r\n\r\n')]),
        Buffer.from('GET / HTTP/9.9\r\n\r\n'),
        Buffer.from('POST /v1/reports HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n'),
        Buffer.from(
          'POST /v1/reports HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello',
        ),
        Buffer.from(`GET /v1/runs HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(20_000)}\r\n\r\n`),
        Buffer.from('GET /v1/ru ns HTTP/1.1\r\n\r\n'),
        Buffer.from(
          'POST /v1/workflows/fuzz-target/trigger HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}',
        ),
      ]);
      return { kind: 'raw', bytes };
    }
    case 1: {
      // Unauthenticated (no or a wrong secret), otherwise valid requests to every protected route.
      const a = pick([
        undefined,
        '',
        'Bearer',
        `Bearer ${secret}x`,
        `bearer ${secret}`,
        `Basic ${secret}`,
        'Bearer wrong',
      ]);
      const headers: Record<string, string> = { ...json };
      if (a !== undefined) headers.authorization = a;
      const [method, path, body] = pick<[string, string, unknown]>([
        ['POST', '/v1/workflows/fuzz-target/trigger', { params: {} }],
        ['POST', '/v1/workflows', { definitions: [goodDefinition] }],
        ['DELETE', '/v1/workflows/fuzz-target', undefined],
        ['POST', '/v1/workflows/fuzz-target/pause', undefined],
        ['POST', '/v1/runs/1/rerun', {}],
        ['POST', '/v1/runs/1/cancel', {}],
        ['POST', '/v1/reports', { reports: [goodReport] }],
        ['DELETE', '/v1/failovers', undefined],
        ['GET', '/v1/runs', undefined],
        ['GET', '/v1/cluster', undefined],
      ]);
      return {
        kind: 'http',
        label: `unauth ${method} ${path}`,
        method,
        path,
        headers,
        ...(body === undefined ? {} : { body: Buffer.from(JSON.stringify(body)) }),
      };
    }
    case 2: {
      // Authenticated, malformed bodies.
      const [path, body] = pick<[string, string | Buffer]>([
        ['/v1/reports', '{"reports": ['],
        ['/v1/reports', JSON.stringify({ reports: 'x' })],
        ['/v1/reports', JSON.stringify({ reports: [{ ...goodReport, attemptId: '../1' }] })],
        ['/v1/reports', JSON.stringify(null)],
        ['/v1/workflows', JSON.stringify({ definitions: [{ name: 'BAD NAME', tasks: [] }] })],
        [
          '/v1/workflows',
          JSON.stringify({ definitions: [{ ...goodDefinition, tasks: [{ name: 'x', type: 'ftp' }] }] }),
        ],
        ['/v1/workflows', JSON.stringify({ sources: [{ label: 'a.yaml', text: 'name: [' }] })],
        ['/v1/workflows', JSON.stringify({ definitions: 'nope' })],
        ['/v1/workflows/fuzz-target/trigger', JSON.stringify({ params: { 'bad-name': 'x' } })],
        ['/v1/workflows/fuzz-target/trigger', JSON.stringify({ params: { A: 5 } })],
        ['/v1/workflows/fuzz-target/trigger', JSON.stringify({ params: 'x' })],
        ['/v1/workflows/fuzz-target/trigger', '{"params":'],
        ['/v1/workflows', Buffer.alloc(5 * 1024 * 1024, 0x20)],
      ]);
      return {
        kind: 'http',
        label: `malformed POST ${path}`,
        method: 'POST',
        path,
        headers: auth,
        body: typeof body === 'string' ? Buffer.from(body) : body,
      };
    }
    default: {
      const [method, path] = pick<[string, string]>([
        ['PUT', '/v1/workflows'],
        ['GET', '/v1/reports'],
        ['POST', '/v1/runs'],
        ['GET', '/v1/runs/abc'],
        ['GET', '/v1/runs?limit=0'],
        ['GET', '/v1/runs?state=exploded'],
        ['GET', '/v1/runs?since=yesterday'],
        ['GET', '/v1/workflows/%ZZ'],
        ['GET', '/v1/workflows/no-such-workflow'],
        ['POST', '/v1/workflows/no-such-workflow/trigger'],
        ['POST', '/v1/runs/999999/cancel'],
        ['GET', '/v1/attempts/xyz/log'],
        ['DELETE', '/v1/failovers?olderThan=soon'],
        ['GET', `/v1/${'x/'.repeat(300)}`],
      ]);
      return { kind: 'http', label: `route ${method} ${path.slice(0, 40)}`, method, path, headers: auth };
    }
  }
}

function sendRaw(bytes: Buffer): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, host);
    const chunks: Buffer[] = [];
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error('no answer within 15 s'));
    }, 15_000);
    socket.on('data', (c) => chunks.push(c));
    socket.on('error', () => {});
    socket.on('close', () => {
      clearTimeout(timer);
      resolve(Buffer.concat(chunks).toString('latin1'));
    });
    socket.write(bytes);
  });
}

function sendHttp(agent: Agent, p: Extract<Probe, { kind: 'http' }>): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(
      {
        host,
        port,
        method: p.method,
        path: p.path,
        agent,
        timeout: 15_000,
        headers: { ...p.headers, ...(p.body ? { 'content-length': String(p.body.length) } : {}) },
      },
      (res) => {
        res.resume();
        res.on('end', () => resolve(res.statusCode ?? 0));
      },
    );
    req.on('timeout', () => req.destroy(new Error(`no answer within 15 s: ${p.label}`)));
    // A refused oversized body may reset the socket after the answer; treat that as the answer missing.
    req.on('error', (err) => reject(new Error(`${p.label}: ${err.message}`)));
    req.end(p.body);
  });
}

test(`${TOTAL} malformed or unauthenticated requests: all 4xx, master stays up, nothing runs`, {
  timeout: 300_000,
}, async () => {
  const r = prng(20261121);
  const agent = new Agent({ keepAlive: true, maxSockets: CONCURRENCY });
  const bad: string[] = [];
  let next = 0;
  const statuses = new Map<number, number>();
  const lane = async () => {
    for (;;) {
      const i = next++;
      if (i >= TOTAL) return;
      const p = probe(i, r, cluster.secret);
      let status: number;
      if (p.kind === 'raw') {
        const answer = await sendRaw(p.bytes);
        const m = /^HTTP\/1\.1 (\d{3})/.exec(answer);
        // A socket closed without an answer is acceptable for bytes that are not HTTP at all.
        status = m ? Number(m[1]) : 400;
      } else {
        try {
          status = await sendHttp(agent, p);
        } catch (err) {
          // An oversized body is refused (413) before it is read; the client may see a reset instead.
          if (p.body && p.body.length > 4 * 1024 * 1024) status = 413;
          else throw err;
        }
      }
      statuses.set(status, (statuses.get(status) ?? 0) + 1);
      if (status < 400 || status >= 500) bad.push(`${p.kind === 'http' ? p.label : 'raw'} → ${status}`);
    }
  };
  await Promise.all(Array.from({ length: CONCURRENCY }, lane));
  agent.destroy();
  console.log(`master fuzz: status counts ${JSON.stringify(Object.fromEntries(statuses))}`);
  expect(bad.slice(0, 20)).toEqual([]);

  // The master process is alive and still serves, authenticated and not.
  expect(master.child.running).toBe(true);
  const health = await fetch(`http://${master.address}/healthz`);
  expect(health.status).toBe(200);
  const runs = await fetch(`http://${master.address}/v1/runs`, {
    headers: { authorization: `Bearer ${cluster.secret}` },
  });
  expect(runs.status).toBe(200);

  // Nothing ran and nothing was written.
  expect(await cluster.query(`SELECT id FROM runs`)).toEqual([]);
  expect(await cluster.query(`SELECT id FROM commands`)).toEqual([]);
  expect(await cluster.query(`SELECT id FROM task_attempts`)).toEqual([]);
  expect((await cluster.query<{ name: string }>(`SELECT name FROM workflows`)).map((w) => w.name)).toEqual([
    'fuzz-target',
  ]);
  expect(existsSync(marker)).toBe(false);
});
