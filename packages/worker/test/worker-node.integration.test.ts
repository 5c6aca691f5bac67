import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { createLogger, loadConfig, SCHED_VERSION } from '@sched/core';
import { type AttemptReport, PROTOCOL_HEADER, PROTOCOL_VERSION } from '@sched/protocol';
import {
  ensureLayout,
  FailoverRecords,
  MemberRegistration,
  MembersView,
  RegistryPaths,
  type WorkerHeartbeat,
  ZkSession,
} from '@sched/registry';
import { eventually, FaultProxy, registerCleanup, sharedZooKeeper, zkChroot } from '@sched/testkit';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { WorkerNode } from '../src/worker-node.js';
import { attemptRequest, pidRuns, tempDir } from './helpers.js';

const SECRET = 'worker-node-secret-0123456789abcdef';
/** ZooKeeper digest credentials of the worker and of the fake master and observer (all one cluster). */
const ZK_AUTH = 'sched:worker-node-zookeeper-credentials';
const paths = new RegistryPaths('/sched');
const logger = createLogger({ level: 'silent', pretty: false });

let dir: Awaited<ReturnType<typeof tempDir>>;
let connect: string;
let observer: ZkSession;
let workers: MembersView;
interface FakeMaster {
  received: AttemptReport[];
  /** Leaves report requests unanswered until the returned release is called. */
  hold(): () => void;
  stop(): Promise<void>;
}

/** One master for the whole file (a second live one would share the reports). */
let master: FakeMaster;

/** A master as far as workers can tell: registered in ZooKeeper, acknowledging reports over HTTP. */
async function startFakeMaster(): Promise<FakeMaster> {
  const received: AttemptReport[] = [];
  let holding: Promise<void> = Promise.resolve();
  const server: Server = createServer((req, res) => {
    let body = '';
    req.on('data', (c) => (body += c));
    req.on('end', async () => {
      if (req.headers.authorization !== `Bearer ${SECRET}`) return void res.writeHead(401).end();
      await holding;
      if (req.socket.destroyed) return; // the worker gave up on this request: nothing acknowledged
      const { reports } = JSON.parse(body) as { reports: AttemptReport[] };
      received.push(...reports);
      res
        .writeHead(200, { 'content-type': 'application/json' })
        .end(JSON.stringify({ acked: reports.map((r) => r.reportId) }));
    });
  });
  const hold = () => {
    let release!: () => void;
    holding = new Promise((r) => {
      release = r;
    });
    return release;
  };
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as AddressInfo).port;
  const startTime = Date.now();
  const session = await ZkSession.connect({ connectString: connect, auth: ZK_AUTH, sessionTimeoutMs: 4000 });
  const registration = new MemberRegistration(session, paths, {
    role: 'master',
    nodeKey: `127.0.0.1:${port}_${startTime}`,
    heartbeat: () => ({
      address: `127.0.0.1:${port}`,
      startTime,
      pid: process.pid,
      version: SCHED_VERSION,
      cpu: 0,
      memory: 0,
      load: 0,
      state: 'NORMAL',
      reportedAt: new Date().toISOString(),
    }),
  });
  await registration.start();
  const stop = async () => {
    await registration.stop();
    await session.close();
    server.closeAllConnections();
    await new Promise<void>((r) => server.close(() => r()));
  };
  registerCleanup('fake master', stop);
  return { received, hold, stop };
}

async function startWorker(
  name: string,
  capacity = 1,
  zk = connect,
  backlog = 0,
  env: Record<string, string> = {},
): Promise<WorkerNode> {
  const config = loadConfig({
    env: {
      SCHED_ZK: zk,
      SCHED_ZK_AUTH: ZK_AUTH,
      SCHED_ZK_SESSION_TIMEOUT: '4s',
      SCHED_CLUSTER_SECRET: SECRET,
      SCHED_HOST: '127.0.0.1',
      SCHED_PORT: '0',
      SCHED_DATA_DIR: join(dir.path, name),
      SCHED_WORKER_GROUPS: 'default,gpu',
      SCHED_WORKER_CAPACITY: String(capacity),
      SCHED_WORKER_BACKLOG: String(backlog),
      SCHED_KILL_GRACE: '300ms',
      SCHED_HEARTBEAT_INTERVAL: '1s',
      ...env,
    },
  });
  const node = await WorkerNode.start({ config, logger });
  registerCleanup(`worker ${name}`, () => node.stop());
  return node;
}

async function dispatch(
  node: WorkerNode,
  body: unknown,
): Promise<{ status: number; json: Record<string, unknown> }> {
  const res = await fetch(`http://${node.address}/v1/attempts`, {
    method: 'POST',
    headers: {
      authorization: `Bearer ${SECRET}`,
      'content-type': 'application/json',
      [PROTOCOL_HEADER]: String(PROTOCOL_VERSION),
    },
    body: JSON.stringify(body),
  });
  return { status: res.status, json: (await res.json()) as Record<string, unknown> };
}

/** The czxid of the worker's registration znode, as the observer (a master's view) sees it. */
const czxidOf = (key: string) => workers.list().find((m) => m.key === key)?.czxid;

const heartbeatOf = (key: string) =>
  workers.list().find((m) => m.key === key)?.heartbeat as WorkerHeartbeat | undefined;

beforeAll(async () => {
  dir = await tempDir('worker-node');
  connect = await zkChroot(await sharedZooKeeper(), 'worker-node');
  observer = await ZkSession.connect({ connectString: connect, auth: ZK_AUTH, sessionTimeoutMs: 4000 });
  await ensureLayout(observer, paths);
  workers = new MembersView(observer, paths, 'worker');
  await workers.start();
  master = await startFakeMaster();
});
afterAll(async () => {
  workers.stop();
  await observer.close();
  await dir.remove();
});

describe('WorkerNode against a real ZooKeeper', () => {
  test('registers with its heartbeat, runs a dispatched task, goes BUSY when its slot is taken and it has no backlog, reports to a live master', async () => {
    const node = await startWorker('w1', 1);
    expect(node.key).toMatch(/^127\.0\.0\.1:\d+_\d+$/);
    const hb = await eventually(() => {
      const h = heartbeatOf(node.key);
      if (!h) throw new Error('worker not registered yet');
      return h;
    });
    expect(hb).toMatchObject({
      groups: ['default', 'gpu'],
      capacity: 1,
      running: 0,
      state: 'NORMAL',
      pid: process.pid,
    });

    const gate = join(dir.path, 'w1-gate');
    const req = attemptRequest(
      { type: 'shell', command: `while [ ! -e '${gate}' ]; do sleep 0.02; done; echo done` },
      { worker: node.key },
    );
    expect((await dispatch(node, req)).status).toBe(202);
    // Full now: the heartbeat says BUSY at once (not at the next interval), and a second shell
    // dispatch is refused as busy; a noop holds no slot and still runs.
    await eventually(() => expect(heartbeatOf(node.key)).toMatchObject({ state: 'BUSY', running: 1 }), {
      timeoutMs: 2_000,
    });
    const refused = await dispatch(node, attemptRequest({ type: 'shell', command: 'true' }));
    expect(refused.status).toBe(429);
    expect(JSON.stringify(refused.json)).toContain('WORKER_AT_CAPACITY');
    expect((await dispatch(node, attemptRequest({ type: 'noop' }))).status).toBe(202);

    const mine = () => master.received.filter((r) => r.attemptId === req.attemptId);
    await eventually(() => expect(mine().map((r) => r.kind)).toEqual(['running']));
    writeFileSync(gate, '');
    await eventually(() => expect(mine().map((r) => r.kind)).toEqual(['running', 'finished']));
    const finished = mine()[1] as AttemptReport;
    expect(finished).toMatchObject({
      attemptId: req.attemptId,
      worker: node.key,
      result: { state: 'succeeded', exitCode: 0 },
    });
    expect(finished.result?.logTail).toContain('done');
    await eventually(() => expect(heartbeatOf(node.key)).toMatchObject({ state: 'NORMAL', running: 0 }), {
      timeoutMs: 2_000,
    });

    // Graceful stop deregisters: nothing for the leader to fail over.
    await node.stop();
    await eventually(() => expect(heartbeatOf(node.key)).toBeUndefined());
  });

  test('drain: DRAINING in the registry, new tasks refused, the running one finishes and is reported', async () => {
    const node = await startWorker('w2', 2);
    await eventually(() => expect(heartbeatOf(node.key)).toBeDefined());
    const req = attemptRequest({ type: 'shell', command: 'sleep 0.5; echo drained-ok' });
    expect((await dispatch(node, req)).status).toBe(202);
    const draining = node.drain(10_000);
    await eventually(() => expect(heartbeatOf(node.key)?.state).toBe('DRAINING'), { timeoutMs: 2_000 });
    const refused = await dispatch(node, attemptRequest({ type: 'noop' }));
    expect(refused.status).toBe(503);
    await draining;
    // Delivered before drain() resolved, not eventually.
    const finished = master.received.find((r) => r.kind === 'finished' && r.attemptId === req.attemptId);
    expect(finished?.result).toMatchObject({ state: 'succeeded' });
    await eventually(() => expect(heartbeatOf(node.key)).toBeUndefined());
  });

  test('a failover record for this incarnation kills its tasks (whole process group) and terminates it', async () => {
    const node = await startWorker('w3', 2);
    await eventually(() => expect(heartbeatOf(node.key)).toBeDefined());
    const req = attemptRequest({ type: 'shell', command: 'sleep 300 & echo "gc=$!"; wait' });
    expect((await dispatch(node, req)).status).toBe(202);
    const grandchild = await eventually(async () => {
      const m = (
        await (
          await fetch(`http://${node.address}/v1/attempts/${req.attemptId}/log?follow=false`, {
            headers: { authorization: `Bearer ${SECRET}` },
          })
        ).text()
      ).match(/gc=(\d+)/);
      if (!m) throw new Error('no pid yet');
      return Number(m[1]);
    });
    expect(pidRuns(grandchild)).toBe(true);

    const leader = new FailoverRecords(observer, paths);
    await leader.write(node.key, {
      role: 'worker',
      address: node.address,
      startTime: node.startTime,
      pid: process.pid,
      sessionId: null,
      failedOverAt: new Date().toISOString(),
      by: '127.0.0.1:1_1',
      tasks: 1,
      runs: 1,
    });
    const { reason } = await node.terminated;
    expect(reason).toMatch(/was failed over/);
    expect(node.state).toBe('terminated');
    expect(node.executor.snapshot(req.attemptId)?.state).toBe('failed-over');
    expect(pidRuns(grandchild)).toBe(false);
    await node.stop();
  });

  test('session LOST (ZooKeeper black-holed): every task group is killed; on a new session the worker registers again and takes work', async () => {
    const zk = await sharedZooKeeper();
    const proxy = await FaultProxy.start({ host: zk.host, port: zk.port });
    registerCleanup('proxy', () => proxy.close());
    const viaProxy = connect.replace(/^[^/]+/, proxy.address);
    const node = await startWorker('w4', 2, viaProxy);
    await eventually(() => expect(heartbeatOf(node.key)).toBeDefined());
    const firstRegistration = czxidOf(node.key) as bigint;
    const req = attemptRequest({ type: 'shell', command: 'sleep 300 & echo "gc=$!"; wait' });
    expect((await dispatch(node, req)).status).toBe(202);
    const grandchild = await eventually(() => {
      const m = node.executor.snapshot(req.attemptId) && /gc=(\d+)/.exec(readLog(node, req.attemptId));
      if (!m) throw new Error('no pid yet');
      return Number(m[1]);
    });

    const cutAt = performance.now();
    proxy.setMode('blackhole');
    // Lease: LOST one session timeout (4 s) after the last reply; then kill grace (300 ms).
    await eventually(() => expect(node.executor.snapshot(req.attemptId)?.state).toBe('failed-over'), {
      timeoutMs: 15_000,
    });
    const killedAfter = performance.now() - cutAt;
    expect(killedAfter).toBeGreaterThan(2_000); // not before the lease could run out
    expect(killedAfter).toBeLessThan(4_000 + 300 + 3_000);
    expect(pidRuns(grandchild)).toBe(false);
    expect(node.state).toBe('fenced');
    expect((await dispatch(node, attemptRequest({ type: 'noop' }))).status).toBe(503);
    // Fenced, it still knows only its old registration: a dispatch for it is refused all the same.
    const forOld = () =>
      attemptRequest({ type: 'noop' }, { worker: node.key, registration: String(firstRegistration) });
    expect((await dispatch(node, forOld())).status).toBe(503);

    proxy.setMode('pass');
    await eventually(() => expect(node.state).toBe('running'), { timeoutMs: 20_000 });
    await eventually(() => expect(czxidOf(node.key)).toBeGreaterThan(firstRegistration));
    const secondRegistration = czxidOf(node.key) as bigint;
    expect((await dispatch(node, attemptRequest({ type: 'noop' }))).status).toBe(202);
    // Same key, new registration: a master whose view still shows the old one cannot start work
    // there (the leader fails the old registration's attempts over); the new one can.
    const stale = forOld();
    const refused = await dispatch(node, stale);
    expect([refused.status, (refused.json.error as { code: string }).code]).toEqual([
      409,
      'WRONG_REGISTRATION',
    ]);
    expect((refused.json.error as { message: string }).message).toContain(
      `registration ${firstRegistration} of worker ${node.key}, but this worker is now registration ${secondRegistration}`,
    );
    expect(node.executor.snapshot(stale.attemptId)).toBeUndefined();
    const current = attemptRequest(
      { type: 'noop' },
      { worker: node.key, registration: String(secondRegistration) },
    );
    expect((await dispatch(node, current)).status).toBe(202);
    // The attempt is reported failed-over, so the master re-runs it (reports go to masters over
    // HTTP, not through ZooKeeper; `killed` would fail the run instead).
    await eventually(() =>
      expect(
        master.received.find((r) => r.attemptId === req.attemptId && r.kind === 'finished')?.result?.state,
      ).toBe('failed-over'),
    );
    await node.stop();
  }, 60_000);

  test('a drain that loses its session stays a drain: registered again, it says DRAINING and refuses dispatches', async () => {
    const zk = await sharedZooKeeper();
    const proxy = await FaultProxy.start({ host: zk.host, port: zk.port });
    registerCleanup('proxy', () => proxy.close());
    const node = await startWorker('w5', 2, connect.replace(/^[^/]+/, proxy.address));
    await eventually(() => expect(heartbeatOf(node.key)).toBeDefined());
    const firstRegistration = czxidOf(node.key) as bigint;
    const req = attemptRequest({ type: 'shell', command: 'sleep 300' });
    expect((await dispatch(node, req)).status).toBe(202);
    const mine = () => master.received.filter((r) => r.attemptId === req.attemptId);
    await eventually(() => expect(mine().map((r) => r.kind)).toEqual(['running']));

    // Reports wait at the master, so the drain is still delivering them (up to 10 s) when the
    // worker registers again — the window in which a fenced drain used to take work again.
    const release = master.hold();
    let drained = false;
    const draining = node.drain(60_000).finally(() => {
      drained = true;
    });
    try {
      await eventually(() => expect(heartbeatOf(node.key)?.state).toBe('DRAINING'), { timeoutMs: 2_000 });
      proxy.setMode('blackhole');
      await eventually(() => expect(node.executor.snapshot(req.attemptId)?.state).toBe('failed-over'), {
        timeoutMs: 15_000,
      });
      expect(node.state).toBe('fenced');
      proxy.setMode('pass');
      await eventually(() => expect(czxidOf(node.key)).toBeGreaterThan(firstRegistration), {
        timeoutMs: 8_000,
      });
      expect(drained).toBe(false); // the drain is still under way: what follows is inside it
      expect(heartbeatOf(node.key)?.state).toBe('DRAINING');
      // The znode is visible here a moment before the worker records it as its registration;
      // in that moment it answers 409 WRONG_REGISTRATION ("it is registering again"), which is
      // a refusal too. Once it knows its registration, the drain answers 503.
      let refused = { status: 0, json: {} as Record<string, unknown> };
      await eventually(async () => {
        refused = await dispatch(
          node,
          attemptRequest(
            { type: 'shell', command: 'sleep 300' },
            { worker: node.key, registration: String(czxidOf(node.key)) },
          ),
        );
        expect(refused.status).not.toBe(202);
        expect((refused.json.error as { code?: string } | undefined)?.code).not.toBe('WRONG_REGISTRATION');
      });
      expect(refused.status).toBe(503);
      expect(node.executor.running).toBe(0);
      expect(node.state).toBe('draining');
      // A heartbeat written later (the interval is 1 s) says DRAINING too.
      const version = workers.list().find((m) => m.key === node.key)?.version ?? 0;
      await eventually(() =>
        expect(workers.list().find((m) => m.key === node.key)?.version).toBeGreaterThan(version),
      );
      expect(heartbeatOf(node.key)?.state).toBe('DRAINING');
      expect(drained).toBe(false);
    } finally {
      release();
    }
    await draining;
    expect(node.state).toBe('stopped');
    expect(mine().find((r) => r.kind === 'finished')?.result?.state).toBe('failed-over');
    await eventually(() => expect(heartbeatOf(node.key)).toBeUndefined());
  }, 60_000);

  test('a drain that runs out of time hands its tasks back: SIGTERM, then failed-over (re-run elsewhere, no retry used)', async () => {
    const node = await startWorker('w6', 2);
    await eventually(() => expect(heartbeatOf(node.key)).toBeDefined());
    const req = attemptRequest({
      type: 'shell',
      command: `trap 'echo got-term; exit 3' TERM; while :; do sleep 0.05; done`,
    });
    expect((await dispatch(node, req)).status).toBe(202);
    const t0 = performance.now();
    await node.drain(500);
    expect(performance.now() - t0).toBeGreaterThanOrEqual(450);
    // Delivered before drain() resolved.
    const finished = master.received.find((r) => r.kind === 'finished' && r.attemptId === req.attemptId);
    expect(finished?.result).toMatchObject({
      state: 'failed-over',
      exitCode: 3,
      error: 'worker drain took longer than 500 ms; handed back',
    });
    expect(finished?.result?.logTail).toContain('got-term');
    expect(node.state).toBe('stopped');
    await eventually(() => expect(heartbeatOf(node.key)).toBeUndefined());
  });

  test('stop() refuses dispatches from its first moment: none starts while it kills the running tasks', async () => {
    const node = await startWorker('w7b', 2);
    await eventually(() => expect(heartbeatOf(node.key)).toBeDefined());
    // A task that ignores SIGTERM: the kill waits out the grace (300 ms), a window for a dispatch.
    const first = attemptRequest({ type: 'shell', command: `trap '' TERM; while :; do sleep 0.05; done` });
    expect((await dispatch(node, first)).status).toBe(202);
    await eventually(() => expect(node.executor.snapshot(first.attemptId)?.state).toBe('running'));
    const stopping = node.stop();
    const late = attemptRequest({ type: 'shell', command: 'echo started' });
    const answer = await dispatch(node, late);
    expect(answer.status).toBe(503);
    expect((answer.json.error as { code?: string } | undefined)?.code).toBe('WORKER_DRAINING');
    await stopping;
    expect(node.executor.snapshot(late.attemptId)).toBeUndefined();
    expect(node.executor.snapshot(first.attemptId)?.result?.state).toBe('failed-over');
  });

  test('stop() hands back the tasks still running', async () => {
    const node = await startWorker('w7', 2);
    await eventually(() => expect(heartbeatOf(node.key)).toBeDefined());
    const req = attemptRequest({ type: 'shell', command: 'sleep 300 & echo "gc=$!"; wait' });
    expect((await dispatch(node, req)).status).toBe(202);
    const grandchild = await eventually(() => {
      const m = /gc=(\d+)/.exec(readLog(node, req.attemptId));
      if (!m) throw new Error('no pid yet');
      return Number(m[1]);
    });
    await node.stop();
    expect(node.executor.snapshot(req.attemptId)?.result).toMatchObject({
      state: 'failed-over',
      error: 'worker stopping; handed back',
    });
    expect(pidRuns(grandchild)).toBe(false);
  });

  test('http tasks reach only what worker.httpDenyNetworks (SCHED_WORKER_HTTP_DENY) allows: refused ones fail with a clear error', async () => {
    const node = await startWorker('w8', 1, connect, 0, { SCHED_WORKER_HTTP_DENY: 'default,127.0.0.2' });
    await eventually(() => expect(heartbeatOf(node.key)).toBeDefined());
    const http = (url: string) =>
      attemptRequest(
        {
          type: 'http',
          url,
          method: 'GET',
          headers: {},
          body: null,
          expectedStatus: [],
          requestTimeoutMs: 5_000,
        },
        { worker: node.key },
      );
    const metadata = http('http://169.254.169.254/latest/meta-data/');
    const configured = http('http://127.0.0.2:9/');
    expect((await dispatch(node, metadata)).status).toBe(202);
    expect((await dispatch(node, configured)).status).toBe(202);
    const finished = (id: string) =>
      eventually(() => {
        const r = master.received.find((x) => x.kind === 'finished' && x.attemptId === id);
        if (!r) throw new Error('not reported yet');
        return r;
      });
    expect((await finished(metadata.attemptId)).result).toMatchObject({
      state: 'failed',
      error:
        'http task refused: 169.254.169.254 is in a denied network (169.254.0.0/16, worker.httpDenyNetworks)',
    });
    expect((await finished(configured.attemptId)).result).toMatchObject({
      state: 'failed',
      error: 'http task refused: 127.0.0.2 is in a denied network (127.0.0.2/32, worker.httpDenyNetworks)',
    });
    await node.stop();
  });

  // Issue 13, point 7. The spool is made unwritable in a way root meets too (its directory is
  // replaced by a file: ENOTDIR). Before the fix the reports were dropped and never reached a master.
  test('a spool that cannot be written: the task completes and its result reaches the master anyway; the heartbeat, /v1/health and /metrics say so until it is writable again', async () => {
    const node = await startWorker('w9', 1);
    await eventually(() => expect(heartbeatOf(node.key)).toBeDefined());
    const spool = join(dir.path, 'w9', 'spool');
    rmSync(spool, { recursive: true, force: true });
    writeFileSync(spool, 'not a directory\n');
    const req = attemptRequest({ type: 'shell', command: 'echo unspooled-result' }, { worker: node.key });
    expect((await dispatch(node, req)).status).toBe(202);
    const finished = await eventually(() => {
      const r = master.received.find((x) => x.kind === 'finished' && x.attemptId === req.attemptId);
      if (!r) throw new Error('not reported yet');
      return r;
    });
    expect(finished.result).toMatchObject({ state: 'succeeded', exitCode: 0 });
    expect(finished.result?.logTail).toContain('unspooled-result');

    await eventually(() => expect(heartbeatOf(node.key)).toMatchObject({ reportSpool: 'failing' }), {
      timeoutMs: 3_000,
    });
    const health = (await (
      await fetch(`http://${node.address}/v1/health`, { headers: { authorization: `Bearer ${SECRET}` } })
    ).json()) as { reportSpool: unknown };
    expect(health.reportSpool).toMatchObject({ state: 'failing', path: spool, unspooled: 0 });
    expect(await (await fetch(`http://${node.address}/metrics`)).text()).toMatch(
      /^sched_worker_report_spool_failing 1$/m,
    );

    rmSync(spool, { force: true });
    mkdirSync(spool);
    // Retried every 5 s (the default): the heartbeat says `ok` again at once.
    await eventually(() => expect(heartbeatOf(node.key)).toMatchObject({ reportSpool: 'ok' }), {
      timeoutMs: 10_000,
    });
    await node.stop();
  });
});

function readLog(node: WorkerNode, attemptId: string): string {
  try {
    return readFileSync(node.logs.pathFor(attemptId), 'utf8');
  } catch {
    return '';
  }
}
