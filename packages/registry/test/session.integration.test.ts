import { performance } from 'node:perf_hooks';
import { EventQueue, eventually, FaultProxy, sharedZooKeeper, timing, zkChroot } from '@sched/testkit';
import zookeeper from 'node-zookeeper-client';
import { beforeAll, describe, expect, it } from 'vitest';
import { FailoverRecords } from '../src/failover-records.js';
import { MemberRegistration } from '../src/member-registration.js';
import { MembersView } from '../src/members-view.js';
import { RegistryPaths } from '../src/registry-paths.js';
import type { SessionStatus } from '../src/session-status.js';
import { expireSessionOnServer, openSession } from './support/zk.js';

// What the session layer sees that the library does not.

const T = 3000;
let connect: string; // host:port/chroot of the shared server
let serverAddress: { host: string; port: number };
let chrootPath: string;
const paths = new RegistryPaths('/sched');

function heartbeat(port: number) {
  return () => ({
    address: `127.0.0.1:${port}`,
    startTime: 1_700_000_000_000,
    pid: process.pid,
    version: 'test',
    cpu: 0.1,
    memory: 0.2,
    load: 0.3,
    state: 'NORMAL' as const,
    reportedAt: new Date().toISOString(),
  });
}

beforeAll(async () => {
  const zk = await sharedZooKeeper();
  serverAddress = { host: zk.host, port: zk.port };
  connect = await zkChroot(zk, 'registry-session');
  chrootPath = connect.slice(connect.indexOf('/'));
});

describe('ZkSession against a real ZooKeeper', () => {
  it('negotiates the timeout, answers requests and reports CONNECTED', async () => {
    const session = await openSession(connect, { sessionTimeoutMs: T });
    expect(session.status.kind).toBe('CONNECTED');
    expect(session.sessionTimeoutMs).toBe(T);
    expect(session.sessionId).toMatch(/^[0-9a-f]{16}$/);
    await session.mkdirp('/a/b');
    expect(await session.exists('/a/b')).toMatchObject({
      version: 0,
      numChildren: 0,
      ephemeralOwner: undefined,
    });
    expect(session.checkLease().remainingMs).toBeGreaterThan(T / 3);
  });

  it('black hole ⇒ SUSPENDED by 2/3·T (+1 tick), LOST at T after the last reply while the raw client says SYNC_CONNECTED; after healing a new session re-creates the ephemeral node', async () => {
    const proxy = await FaultProxy.start(serverAddress);
    const session = await openSession(`${proxy.address}${chrootPath}`, { sessionTimeoutMs: T });
    const observer = await openSession(connect, { sessionTimeoutMs: 10_000 });
    const key = '127.0.0.1:7001_1700000000000';
    const registration = new MemberRegistration(session, paths, {
      role: 'worker',
      nodeKey: key,
      intervalMs: 500,
      heartbeat: () => ({ ...heartbeat(7001)(), groups: ['default'], weight: 1, capacity: 4, running: 0 }),
    });
    const first = await registration.start();
    expect(first.sessionId).toBe(session.sessionId);

    // The library client of the first session (the session replaces it after LOST).
    const raw = session.rawClient;
    const statuses = new EventQueue<{ kind: SessionStatus['kind']; at: number; raw: string }>();
    session.on('status', (s) =>
      statuses.push({ kind: s.kind, at: performance.now(), raw: raw.getState().name }),
    );
    // When does the server delete the victim's node?
    // (Watches are one-shot and heartbeats change the data, so re-arm until the deletion.)
    let deletedAt = 0;
    const watchDeletion = async (): Promise<void> => {
      await observer.exists(first.path, (e) => {
        if (e.type === 'deleted') deletedAt = performance.now();
        else void watchDeletion();
      });
    };
    await watchDeletion();

    await timing.sleep(500); // let a probe round-trip happen so lastContact is recent
    const blackholeAt = performance.now();
    proxy.setMode('blackhole');

    const suspended = await statuses.next(timing.forWaiting());
    expect(suspended.kind).toBe('SUSPENDED');
    expect(suspended.raw).toBe('SYNC_CONNECTED');
    // SUSPENDED within 2/3·T of the last reply plus one watchdog tick (T/3), measured from the fault.
    expect(suspended.at - blackholeAt).toBeLessThanOrEqual((2 * T) / 3 + T / 3 + 400);
    const lastContact = (session as unknown as { watchdog: { lastContactAt: number } }).watchdog
      .lastContactAt;
    expect(lastContact).toBeLessThanOrEqual(blackholeAt);
    expect(suspended.at - lastContact).toBeGreaterThanOrEqual((2 * T) / 3);

    const lost = await statuses.next(timing.forWaiting());
    expect(lost.kind).toBe('LOST');
    // LOST exactly one session timeout after the last answered request (timer slack allowed).
    expect(lost.at - lastContact).toBeGreaterThanOrEqual(T);
    expect(lost.at - lastContact).toBeLessThanOrEqual(T + 400);
    // The library still believes in its connection: the bug the session layer covers.
    expect(lost.raw).toBe('SYNC_CONNECTED');
    expect(() => session.checkLease({ allowSuspended: true })).toThrow(/lease|LOST/);

    // The server expires the session no earlier than our LOST (the lease is conservative).
    await eventually(() => expect(deletedAt).toBeGreaterThan(0), { timeoutMs: timing.forWaiting() });
    expect(deletedAt).toBeGreaterThanOrEqual(lost.at);

    const reRegistered = new Promise<{ sessionId: string; generation: number }>((resolve) =>
      registration.once('registered', resolve),
    );
    proxy.setMode('pass');
    const back = await statuses.next(timing.forWaiting());
    expect(back.kind).toBe('RECONNECTED');
    expect(session.status).toMatchObject({ kind: 'RECONNECTED', newSession: true, generation: 2 });
    expect(session.sessionId).not.toBe(first.sessionId);
    const again = await reRegistered;
    expect(again.generation).toBe(2);
    const stat = await observer.exists(first.path);
    expect(stat?.ephemeralOwner).toBe(session.sessionId);
    await registration.stop();
  });

  it('server-side expiry ⇒ LOST(expired) on reconnect; ephemeral node and watches are re-established in a new session', async () => {
    // Behind a proxy only so that the victim cannot re-attach the session in the instant
    // between the second handle attaching and closing it.
    const proxy = await FaultProxy.start(serverAddress);
    const session = await openSession(`${proxy.address}${chrootPath}`, { sessionTimeoutMs: T });
    const observer = await openSession(connect, { sessionTimeoutMs: 10_000 });
    const key = '127.0.0.1:7002_1700000000000';
    const registration = new MemberRegistration(session, paths, {
      role: 'master',
      nodeKey: key,
      intervalMs: 500,
      heartbeat: heartbeat(7002),
    });
    const first = await registration.start();
    // Watches held by the victim: a live view of the workers and a failover-record watch.
    const view = new MembersView(session, paths, 'worker');
    await view.start();
    const added = new EventQueue<string>();
    view.on('added', (m) => added.push(m.key));
    const records = new FailoverRecords(session, paths);
    const told = new EventQueue<string>();
    records.watchFor('master', key, (r) => told.push(r.by));

    const statuses = new EventQueue<string>();
    session.on('status', (s) => statuses.push(`${s.kind}${'reason' in s ? `:${s.reason}` : ''}`));
    const reRegistered = new Promise<{ generation: number }>((resolve) =>
      registration.once('registered', resolve),
    );

    proxy.setMode('down');
    await expireSessionOnServer(connect, session.credentials, T);
    // The server dropped the ephemeral node at once.
    await eventually(async () => {
      const stat = await observer.exists(first.path);
      expect(stat?.ephemeralOwner).not.toBe(first.sessionId);
    });
    proxy.setMode('pass');
    // The victim learns it only by reconnecting: SUSPENDED (socket dropped), then LOST(expired).
    await statuses.expectSequence(
      ['SUSPENDED:disconnected', 'LOST:expired', 'RECONNECTED'],
      timing.forWaiting(),
    );
    expect(session.status).toMatchObject({ kind: 'RECONNECTED', newSession: true, generation: 2 });

    const again = await reRegistered;
    expect(again.generation).toBe(2);
    await eventually(async () =>
      expect((await observer.exists(first.path))?.ephemeralOwner).toBe(session.sessionId),
    );

    // Watches of the new session work: a worker appears, the view hears of it.
    await observer.mkdirp(paths.members('worker'));
    await observer.create(
      paths.member('worker', '127.0.0.1:9000_1'),
      Buffer.from(
        JSON.stringify({
          ...heartbeat(9000)(),
          groups: ['default'],
          weight: 1,
          capacity: 1,
          running: 0,
        }),
      ),
      { mode: 'ephemeral' },
    );
    expect(await added.next(timing.forWaiting())).toBe('127.0.0.1:9000_1');
    // …and the failover-record watch was re-armed too: it fires within a second of the write.
    const observerRecords = new FailoverRecords(observer, paths);
    const writtenAt = performance.now();
    await observerRecords.write(key, {
      role: 'master',
      address: '127.0.0.1:7002',
      startTime: 1_700_000_000_000,
      pid: 1,
      sessionId: first.sessionId,
      failedOverAt: new Date().toISOString(),
      by: 'leader-x',
      tasks: 0,
      runs: 0,
    });
    expect(await told.next(1000)).toBe('leader-x');
    expect(performance.now() - writtenAt).toBeLessThan(1000);
    view.stop();
    await registration.stop();
  });

  it('a request to a black-holed server fails at its deadline, not when TCP gives up', async () => {
    const proxy = await FaultProxy.start(serverAddress);
    const session = await openSession(`${proxy.address}${chrootPath}`, { sessionTimeoutMs: 10_000 });
    proxy.setMode('blackhole');
    const started = performance.now();
    await expect(session.getChildren('/', undefined, { timeoutMs: 300 })).rejects.toMatchObject({
      code: 'TIMEOUT',
    });
    expect(performance.now() - started).toBeLessThan(1500);
    proxy.setMode('pass');
  });

  it('close() deletes ephemeral nodes at once and ends in CLOSED', async () => {
    const session = await openSession(connect, { sessionTimeoutMs: T });
    const observer = await openSession(connect, { sessionTimeoutMs: 10_000 });
    await session.create('/gone-on-close', undefined, { mode: 'ephemeral' });
    await session.close();
    expect(session.status.kind).toBe('CLOSED');
    await eventually(async () => expect(await observer.exists('/gone-on-close')).toBeUndefined(), {
      timeoutMs: 2000,
    });
    await expect(session.exists('/')).rejects.toMatchObject({ code: 'SESSION_CLOSED' });
  });

  it('the library really does stay SYNC_CONNECTED under a black hole (the bug this layer exists for)', async () => {
    const proxy = await FaultProxy.start(serverAddress);
    const client = zookeeper.createClient(`${proxy.address}${chrootPath}`, { sessionTimeout: 1000 });
    await new Promise<void>((resolve) => {
      client.once('connected', () => resolve());
      client.connect();
    });
    proxy.setMode('blackhole');
    await timing.sleep(2000);
    expect(client.getState().name).toBe('SYNC_CONNECTED');
    proxy.setMode('pass');
    client.close();
  });
});
