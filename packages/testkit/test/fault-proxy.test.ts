import { connect, createServer, type Server, type Socket } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  EventQueue,
  eventually,
  FaultProxy,
  startZooKeeper,
  timing,
  ZkOp,
  type ZkServer,
  zkRequestMatcher,
} from '../src/index.js';
import { connectZk, create, exists, type ZkClient, zookeeper } from './zk-helpers.js';

/** An echo server: replies with every chunk it receives. */
async function startEcho(): Promise<{ server: Server; port: number; sockets: Set<Socket> }> {
  const sockets = new Set<Socket>();
  const server = createServer((socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => undefined);
    socket.on('data', (chunk) => socket.write(chunk));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  if (address === null || typeof address === 'string') throw new Error('no address');
  return { server, port: address.port, sockets };
}

interface TestClient {
  socket: Socket;
  received: () => string;
  events: EventQueue<string>;
}

function connectClient(port: number): Promise<TestClient> {
  return new Promise((resolve, reject) => {
    const events = new EventQueue<string>();
    let received = '';
    const socket = connect({ host: '127.0.0.1', port });
    socket.on('data', (chunk) => {
      received += chunk.toString();
      events.push(`data:${chunk.toString()}`);
    });
    socket.on('error', (error: NodeJS.ErrnoException) => events.push(`error:${error.code}`));
    socket.on('close', () => events.push('close'));
    socket.once('connect', () => resolve({ socket, received: () => received, events }));
    socket.once('error', reject);
  });
}

/** Connects and resolves with how the connection ended: refused connections end in a reset. */
function connectionOutcome(port: number): Promise<string> {
  return new Promise((resolve) => {
    const socket = connect({ host: '127.0.0.1', port });
    let outcome = 'closed';
    socket.on('error', (error: NodeJS.ErrnoException) => {
      outcome = `error:${error.code}`;
    });
    socket.on('data', () => {
      outcome = 'data';
    });
    socket.on('close', () => resolve(outcome));
  });
}

describe('FaultProxy on a plain TCP echo server', () => {
  let echo: Awaited<ReturnType<typeof startEcho>>;
  beforeAll(async () => {
    echo = await startEcho();
  });
  afterAll(() => {
    echo.server.close();
    for (const s of echo.sockets) s.destroy();
  });

  it('pass forwards both ways and counts connections', async () => {
    const proxy = await FaultProxy.start({ host: '127.0.0.1', port: echo.port });
    const client = await connectClient(proxy.port);
    client.socket.write('hello');
    await client.events.expectSequence(['data:hello']);
    expect(proxy.connections()).toBe(1);
    client.socket.end();
    await client.events.expectSequence(['close']);
    await eventually(() => expect(proxy.connections()).toBe(0));
    await proxy.close();
  });

  it('pass keeps half-closed connections working (the reply to a request sent with FIN arrives)', async () => {
    const proxy = await FaultProxy.start({ host: '127.0.0.1', port: echo.port });
    const client = await connectClient(proxy.port);
    client.socket.end('last words');
    await client.events.expectSequence(['data:last words', 'close']);
    await eventually(() => expect(proxy.connections()).toBe(0));
    await proxy.close();
  });

  it('blackhole stops bytes both ways while sockets stay open, and heals on the same socket', async () => {
    const proxy = await FaultProxy.start({ host: '127.0.0.1', port: echo.port });
    const client = await connectClient(proxy.port);
    client.socket.write('before');
    await client.events.expectSequence(['data:before']);
    proxy.setMode('blackhole');
    client.socket.write('during');
    // Nothing comes back and nothing closes: a silent partition.
    await client.events.expectQuiet(timing.forSleeping() * 2);
    expect(client.socket.destroyed).toBe(false);
    expect(proxy.connections()).toBe(1);
    expect(echo.sockets.size).toBe(1);
    proxy.setMode('pass');
    // Queued bytes are delivered in order on heal, on the same socket.
    await client.events.expectSequence(['data:during']);
    client.socket.write('after');
    await client.events.expectSequence(['data:after']);
    client.socket.destroy();
    await proxy.close();
  });

  it('blackhole hides a server-side close (FIN) until heal, then delivers it', async () => {
    const proxy = await FaultProxy.start({ host: '127.0.0.1', port: echo.port });
    const client = await connectClient(proxy.port);
    client.socket.write('x');
    await client.events.expectSequence(['data:x']);
    proxy.setMode('blackhole');
    client.socket.write('queued');
    for (const s of echo.sockets) s.end();
    await client.events.expectQuiet(timing.forSleeping() * 2);
    expect(client.socket.destroyed).toBe(false);
    proxy.setMode('pass');
    // The echo of 'queued' is lost (the server had closed), the FIN arrives.
    await client.events.expectSequence(['close']);
    await proxy.close();
  });

  it('blackhole hides a server-side reset until heal, then resets the client', async () => {
    const proxy = await FaultProxy.start({ host: '127.0.0.1', port: echo.port });
    const client = await connectClient(proxy.port);
    client.socket.write('x');
    await client.events.expectSequence(['data:x']);
    proxy.setMode('blackhole');
    for (const s of echo.sockets) s.resetAndDestroy();
    await client.events.expectQuiet(timing.forSleeping() * 2);
    expect(client.socket.destroyed).toBe(false);
    proxy.setMode('pass');
    await client.events.expectSequence(['error:ECONNRESET', 'close']);
    await proxy.close();
  });

  it('cut resets existing connections and still forwards new ones', async () => {
    const proxy = await FaultProxy.start({ host: '127.0.0.1', port: echo.port });
    const first = await connectClient(proxy.port);
    const second = await connectClient(proxy.port);
    await eventually(() => expect(proxy.connections()).toBe(2));
    proxy.setMode('cut');
    await first.events.expectSequence(['error:ECONNRESET', 'close']);
    await second.events.expectSequence(['error:ECONNRESET', 'close']);
    expect(proxy.connections()).toBe(0);
    const third = await connectClient(proxy.port);
    third.socket.write('again');
    await third.events.expectSequence(['data:again']);
    third.socket.destroy();
    await proxy.close();
  });

  it('reject refuses new connections but leaves existing ones alone; down does both', async () => {
    const proxy = await FaultProxy.start({ host: '127.0.0.1', port: echo.port });
    const existing = await connectClient(proxy.port);
    proxy.setMode('reject');
    expect(await connectionOutcome(proxy.port)).toBe('error:ECONNRESET');
    existing.socket.write('still');
    await existing.events.expectSequence(['data:still']);
    proxy.setMode('down');
    await existing.events.expectSequence(['error:ECONNRESET', 'close']);
    expect(await connectionOutcome(proxy.port)).toBe('error:ECONNRESET');
    proxy.setMode('pass');
    const accepted = await connectClient(proxy.port);
    accepted.socket.write('ok');
    await accepted.events.expectSequence(['data:ok']);
    accepted.socket.destroy();
    await proxy.close();
  });

  it('delay adds latency both ways, preserving order', async () => {
    const proxy = await FaultProxy.start({ host: '127.0.0.1', port: echo.port });
    const client = await connectClient(proxy.port);
    const delayMs = 300;
    proxy.setMode({ delayMs });
    const sent = performance.now();
    client.socket.write('slow');
    await client.events.expectSequence(['data:slow']);
    const roundTrip = performance.now() - sent;
    // One delay upstream, one downstream.
    expect(roundTrip).toBeGreaterThanOrEqual(2 * delayMs - 5);
    proxy.setMode('pass');
    const fastSent = performance.now();
    client.socket.write('fast');
    await client.events.expectSequence(['data:fast']);
    expect(performance.now() - fastSent).toBeLessThan(2 * delayMs);
    client.socket.destroy();
    await proxy.close();
  });

  it('without a target, holds connections (bytes included) until setTarget; retargeting moves new ones only', async () => {
    const other = await startEcho();
    // Earlier tests' server sides close asynchronously.
    await eventually(() => expect(echo.sockets.size).toBe(0));
    const proxy = await FaultProxy.start();
    expect(proxy.target).toBeUndefined();
    const early = await connectClient(proxy.port);
    early.socket.write('early');
    await early.events.expectQuiet(timing.forSleeping());
    expect(echo.sockets.size).toBe(0);
    proxy.setTarget({ host: '127.0.0.1', port: echo.port });
    await early.events.expectSequence(['data:early']);
    expect(echo.sockets.size).toBe(1);
    proxy.setTarget({ host: '127.0.0.1', port: other.port });
    const late = await connectClient(proxy.port);
    late.socket.write('late');
    await late.events.expectSequence(['data:late']);
    expect(other.sockets.size).toBe(1);
    // The early connection still reaches the first server.
    early.socket.write('still');
    await early.events.expectSequence(['data:still']);
    expect(echo.sockets.size).toBe(1);
    // A waiting connection is reset by `down`, like an established one.
    proxy.setTarget(undefined);
    const waiting = await connectClient(proxy.port);
    proxy.setMode('down');
    await waiting.events.expectSequence(['error:ECONNRESET', 'close']);
    early.socket.destroy();
    late.socket.destroy();
    await proxy.close();
    other.server.close();
    for (const s of other.sockets) s.destroy();
  });

  it('rejects an invalid mode with a clear message', async () => {
    const proxy = await FaultProxy.start({ host: '127.0.0.1', port: echo.port });
    expect(() => proxy.setMode('sever' as never)).toThrow(/mode must be 'pass'.*got "sever"/);
    expect(() => proxy.setMode({ delayMs: -1 })).toThrow(/non-negative/);
    await proxy.close();
  });
});

describe('FaultProxy between a ZooKeeper client and a real server', () => {
  let zk: ZkServer;
  const clients: ZkClient[] = [];
  beforeAll(async () => {
    zk = await startZooKeeper();
  });
  afterAll(() => {
    for (const c of clients) c.close();
  });

  it('blackhole: the victim stays SYNC_CONNECTED and hears nothing while the server expires its session', async () => {
    const proxy = await FaultProxy.start({ host: zk.host, port: zk.port });
    const sessionTimeout = timing.session();
    const victim = await connectZk(proxy.address, sessionTimeout);
    const observer = await connectZk(zk.connectString);
    clients.push(victim, observer);
    const victimEvents = new EventQueue<string>();
    victim.on('state', (state: zookeeper.State) => victimEvents.push(state.name));
    await create(victim, '/victim', 'v', zookeeper.CreateMode.EPHEMERAL);
    const deleted = new EventQueue<string>();
    await new Promise<void>((resolve, reject) =>
      observer.exists(
        '/victim',
        (event) => deleted.push(event.getName()),
        (error) => (error ? reject(error) : resolve()),
      ),
    );

    proxy.setMode('blackhole');
    // The server expires the session (ephemeral node gone) while the victim knows nothing.
    await deleted.expectSequence(['NODE_DELETED'], timing.forWaiting());
    expect(victim.getState()).toBe(zookeeper.State.SYNC_CONNECTED);
    await victimEvents.expectQuiet(timing.forSleeping());
    expect(proxy.connections()).toBe(1);
    expect(await exists(observer, '/victim')).toBe(false);

    // On heal the victim finds out (the server had closed the connection).
    proxy.setMode('pass');
    await victimEvents.expectSequence(['DISCONNECTED', 'EXPIRED'], timing.forWaiting());
    await proxy.close();
  });

  it('cut closes the client socket at once; the client reconnects through the proxy', async () => {
    const proxy = await FaultProxy.start({ host: zk.host, port: zk.port });
    const client = await connectZk(proxy.address, 10_000);
    clients.push(client);
    const events = new EventQueue<string>();
    client.on('state', (state: zookeeper.State) => events.push(state.name));
    proxy.setMode('cut');
    await events.expectSequence(['DISCONNECTED', 'SYNC_CONNECTED']);
    await create(client, '/after-cut', '');
    await proxy.close();
  });

  it('cutAfterRequest: the create reaches the server but its reply is lost', async () => {
    const proxy = await FaultProxy.start({ host: zk.host, port: zk.port });
    const client = await connectZk(proxy.address, 10_000);
    const observer = await connectZk(zk.connectString);
    clients.push(client, observer);
    const cut = proxy.cutAfterRequest(zkRequestMatcher(ZkOp.create, ZkOp.create2));
    // Other requests pass untouched until a create comes along.
    expect(await exists(client, '/reply-lost')).toBe(false);
    await expect(create(client, '/reply-lost', 'x')).rejects.toThrow(/CONNECTION_LOSS/);
    await cut;
    expect(await exists(observer, '/reply-lost')).toBe(true);
    await proxy.close();
  });

  it('down keeps the client disconnected until healed', async () => {
    const proxy = await FaultProxy.start({ host: zk.host, port: zk.port });
    const client = await connectZk(proxy.address, 10_000);
    clients.push(client);
    const events = new EventQueue<string>();
    client.on('state', (state: zookeeper.State) => events.push(state.name));
    proxy.setMode('down');
    const acceptedBefore = proxy.acceptedConnections();
    await events.expectSequence(['DISCONNECTED']);
    // The client keeps trying; every attempt is accepted and reset.
    await eventually(() => expect(proxy.acceptedConnections()).toBeGreaterThan(acceptedBefore + 1));
    await events.expectQuiet(timing.forSleeping() * 2);
    expect(proxy.connections()).toBe(0);
    proxy.setMode('pass');
    await events.expectSequence(['SYNC_CONNECTED']);
    await proxy.close();
  });
});
