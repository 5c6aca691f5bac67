// An in-process TCP proxy to put between a client (a master, a worker, a ZooKeeper or pg
// client) and its server, to inject network faults at run time. Model: pg-boss
// test/halfOpenProxy.ts. One proxy per client gives per-node partitions; one per server
// gives client↔server-subset partitions.
//
// Modes (setMode; switchable at any time, per proxy):
//   pass        bytes flow both ways.
//   blackhole   a silent partition: every socket stays open, no byte moves either way, no
//               close is propagated. Bytes sent meanwhile are QUEUED in order and delivered
//               when the proxy leaves blackhole (as TCP retransmission would after a short
//               partition); stream framing therefore stays intact. A close is held back
//               too: a FIN sent during the blackhole (e.g. ZooKeeper expiring the session
//               and closing the connection) reaches the other side on heal, after the
//               queued bytes; a reset (or socket error) resets the other side on heal and
//               discards the queue.
//   cut         a visible partition, one-shot: every existing connection is reset (RST) on
//               both sides at the moment of the switch. New connections are accepted and
//               forwarded afterwards (behaves as pass). To keep the server unreachable,
//               switch to `reject` afterwards or use `down`.
//   reject      "the server is down": new connections are accepted and reset at once;
//               existing connections are left as they are.
//   down        cut + reject: existing connections reset, new ones refused.
//   {delayMs}   every chunk is delivered `delayMs` later, order preserved (latency).
//
// The target may be unknown when the proxy starts (a daemon that will listen behind it, whose
// port the proxy's own port is advertised for) and may change (the daemon restarted on another
// port): connections that arrive while there is no target wait, paused, until setTarget()
// gives one (or a `reject`/`down` mode or close() resets them).
//
// cutAfterRequest(match) is a one-shot fault on top of the mode (Curator's
// ChaosMonkeyCnxnFactory): the next client chunk that `match` accepts is forwarded, the
// server's reply is dropped, and the connection is reset once the reply has arrived (or
// after a timeout): "the request succeeded, the reply was lost". See zk-wire.ts for a
// ZooKeeper request matcher.
//
// State per connection: open → (closing: one side ended, draining queue) → closed.

import { createServer, type Server, Socket } from 'node:net';
import { registerCleanup } from './cleanup.js';
import { HarnessError } from './errors.js';

export type FaultMode = 'pass' | 'blackhole' | 'cut' | 'reject' | 'down' | { delayMs: number };

/** Bytes queued per direction during a blackhole before the connection is reset instead. */
const maxQueuedBytes = 64 * 1024 * 1024;

interface Direction {
  from: Socket;
  to: Socket;
  queue: { data: Buffer; dueAt: number }[];
  queuedBytes: number;
  timer: NodeJS.Timeout | undefined;
  /** `from` sent FIN; end `to` once the queue is drained. */
  ended: boolean;
}

export type RequestMatcher = (chunk: Buffer, info: { chunkIndex: number }) => boolean;

interface PendingCut {
  match: RequestMatcher;
  timeoutMs: number;
  done: () => void;
}

class ProxiedConnection {
  readonly upstream: Direction;
  readonly downstream: Direction;
  closed = false;
  /** Client chunks seen so far (for request matchers). */
  private upstreamChunks = 0;
  /** Set once a cut-after-request matched on this connection: replies are dropped. */
  private cutting: PendingCut | undefined;
  /** A side closed while blackholed; reset the other side on heal. */
  brokenDuringBlackhole = false;

  constructor(
    readonly client: Socket,
    readonly server: Socket,
    private readonly proxy: FaultProxy,
  ) {
    this.upstream = { from: client, to: server, queue: [], queuedBytes: 0, timer: undefined, ended: false };
    this.downstream = { from: server, to: client, queue: [], queuedBytes: 0, timer: undefined, ended: false };
    for (const direction of [this.upstream, this.downstream]) {
      direction.from.on('data', (chunk: Buffer) => this.onData(direction, chunk));
      direction.from.on('end', () => {
        direction.ended = true;
        this.pump(direction);
      });
      direction.from.on('close', () => this.onSideClosed());
      direction.from.on('error', () => {
        // A side was reset (or failed): pass the reset on, unless a blackhole hides it.
        if (this.proxy.mode === 'blackhole') this.brokenDuringBlackhole = true;
        else this.reset();
      });
    }
  }

  private onData(direction: Direction, chunk: Buffer): void {
    if (this.closed) return;
    if (this.cutting && direction === this.downstream) {
      // The reply to the matched request (or later traffic): lose it and cut now.
      this.finishCut();
      return;
    }
    if (direction === this.upstream) {
      const pending = this.proxy.pendingCut;
      const chunkIndex = this.upstreamChunks++;
      if (pending && !this.cutting && pending.match(chunk, { chunkIndex })) {
        this.proxy.pendingCut = undefined;
        this.cutting = pending;
        // If the server never answers, cut anyway.
        setTimeout(() => this.finishCut(), pending.timeoutMs).unref();
      }
    }
    const mode = this.proxy.mode;
    const delayMs = typeof mode === 'object' ? mode.delayMs : 0;
    direction.queue.push({ data: chunk, dueAt: performance.now() + delayMs });
    direction.queuedBytes += chunk.length;
    if (direction.queuedBytes > maxQueuedBytes) {
      this.reset();
      return;
    }
    this.pump(direction);
  }

  /** Delivers what is due, unless blackholed; schedules itself for delayed chunks. */
  pump(direction: Direction): void {
    if (this.closed || this.proxy.mode === 'blackhole') return;
    if (direction.timer) {
      clearTimeout(direction.timer);
      direction.timer = undefined;
    }
    const now = performance.now();
    while (direction.queue.length > 0) {
      const head = direction.queue[0]!;
      if (head.dueAt > now) {
        direction.timer = setTimeout(() => this.pump(direction), Math.ceil(head.dueAt - now));
        return;
      }
      direction.queue.shift();
      direction.queuedBytes -= head.data.length;
      if (!direction.to.destroyed) direction.to.write(head.data);
    }
    if (direction.ended && !direction.to.destroyed) direction.to.end();
  }

  private onSideClosed(): void {
    if (this.closed) return;
    if (this.proxy.mode === 'blackhole') {
      // The far side must not learn of it until the partition heals.
      this.brokenDuringBlackhole = true;
      return;
    }
    // Deliver what is still queued (delay mode), then close; a reset needs no ceremony.
    const drainThenClose = (): void => {
      if (this.upstream.queue.length > 0 || this.downstream.queue.length > 0) {
        setTimeout(drainThenClose, 5);
        return;
      }
      this.close();
    };
    drainThenClose();
  }

  /** Called when the proxy leaves blackhole. */
  heal(): void {
    if (this.closed) return;
    if (this.brokenDuringBlackhole || this.client.destroyed || this.server.destroyed) {
      this.reset();
      return;
    }
    this.pump(this.upstream);
    this.pump(this.downstream);
  }

  private finishCut(): void {
    const cutting = this.cutting;
    if (!cutting || this.closed) return;
    this.reset();
    cutting.done();
  }

  /** RST both sides now. */
  reset(): void {
    if (this.closed) return;
    this.closed = true;
    for (const direction of [this.upstream, this.downstream]) {
      if (direction.timer) clearTimeout(direction.timer);
      direction.queue = [];
    }
    for (const socket of [this.client, this.server]) {
      if (!socket.destroyed) socket.resetAndDestroy();
    }
    this.proxy.forget(this);
  }

  private close(): void {
    if (this.closed) return;
    this.closed = true;
    for (const direction of [this.upstream, this.downstream]) {
      if (direction.timer) clearTimeout(direction.timer);
    }
    this.client.end();
    this.server.end();
    // Do not wait for a peer that never answers the FIN.
    setTimeout(() => {
      this.client.destroy();
      this.server.destroy();
    }, 1000).unref();
    this.proxy.forget(this);
  }
}

export class FaultProxy {
  private currentMode: FaultMode = 'pass';
  private readonly open = new Set<ProxiedConnection>();
  private accepted = 0;
  private closedProxy = false;
  /** Client sockets accepted while there was no target, waiting (paused) for one. */
  private readonly waiting = new Set<Socket>();
  /** @internal the armed cutAfterRequest, taken by the first connection whose chunk matches. */
  pendingCut: PendingCut | undefined;

  private constructor(
    private readonly server: Server,
    private currentTarget: { host: string; port: number } | undefined,
    readonly port: number,
  ) {}

  /**
   * Starts a proxy on a random 127.0.0.1 port forwarding to `target` (or, without one, holding
   * connections until `setTarget`); closed at the end of the test file.
   */
  static async start(target?: { host: string; port: number }): Promise<FaultProxy> {
    // Half-open sockets on both sides, so a FIN is forwarded as a FIN and the other
    // direction keeps flowing (a request sent with FIN still gets its reply).
    const server = createServer({ allowHalfOpen: true, noDelay: true });
    const port = await new Promise<number>((resolve, reject) => {
      server.once('error', reject);
      server.listen({ host: '127.0.0.1', port: 0 }, () => {
        const address = server.address();
        if (address === null || typeof address === 'string')
          reject(new HarnessError('TESTKIT_SERVER_START', 'FaultProxy: no TCP address'));
        else resolve(address.port);
      });
    });
    const proxy = new FaultProxy(server, target, port);
    server.on('connection', (client) => proxy.onConnection(client));
    registerCleanup(`close FaultProxy ${proxy.address}`, () => proxy.close());
    return proxy;
  }

  /** `127.0.0.1:port`: give this to the client instead of the server's address. */
  get address(): string {
    return `127.0.0.1:${this.port}`;
  }

  get host(): '127.0.0.1' {
    return '127.0.0.1';
  }

  get mode(): FaultMode {
    return this.currentMode;
  }

  /** Where connections are forwarded; undefined while new connections wait for a target. */
  get target(): { host: string; port: number } | undefined {
    return this.currentTarget;
  }

  /**
   * Forwards new connections to `target` from now on (open ones stay where they are), and
   * releases the connections waiting for a target. `undefined` makes new connections wait.
   */
  setTarget(target: { host: string; port: number } | undefined): void {
    this.currentTarget = target;
    if (!target) return;
    for (const client of [...this.waiting]) {
      this.waiting.delete(client);
      if (!client.destroyed) this.forward(client, target);
    }
  }

  setMode(mode: FaultMode): void {
    validateMode(mode);
    const wasBlackhole = this.currentMode === 'blackhole';
    if (mode === 'cut' || mode === 'down') {
      for (const connection of [...this.open]) connection.reset();
    }
    if (mode === 'cut' || mode === 'down' || mode === 'reject') this.resetWaiting();
    this.currentMode = mode;
    if (wasBlackhole && mode !== 'blackhole') {
      for (const connection of [...this.open]) connection.heal();
    }
  }

  /**
   * One-shot "reply lost" fault: forwards the next client chunk accepted by `match`, drops
   * the server's reply and resets the connection once the reply arrived (or after
   * `timeoutMs`, default 2000). Resolves when the connection has been cut.
   */
  cutAfterRequest(match: RequestMatcher, opts: { timeoutMs?: number } = {}): Promise<void> {
    return new Promise((resolve) => {
      this.pendingCut = { match, timeoutMs: opts.timeoutMs ?? 2000, done: resolve };
    });
  }

  /** Connections currently open through the proxy. */
  connections(): number {
    return this.open.size;
  }

  /** Connections accepted since start (including rejected ones). */
  acceptedConnections(): number {
    return this.accepted;
  }

  /** Resets every open connection and stops listening. */
  async close(): Promise<void> {
    if (this.closedProxy) return;
    this.closedProxy = true;
    for (const connection of [...this.open]) connection.reset();
    this.resetWaiting();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  /** @internal */
  forget(connection: ProxiedConnection): void {
    this.open.delete(connection);
  }

  private resetWaiting(): void {
    for (const client of this.waiting) client.resetAndDestroy();
    this.waiting.clear();
  }

  private onConnection(client: Socket): void {
    this.accepted += 1;
    client.setNoDelay(true);
    client.on('error', () => undefined);
    if (this.currentMode === 'reject' || this.currentMode === 'down' || this.closedProxy) {
      client.resetAndDestroy();
      return;
    }
    const target = this.currentTarget;
    if (!target) {
      client.pause();
      this.waiting.add(client);
      client.once('close', () => this.waiting.delete(client));
      return;
    }
    this.forward(client, target);
  }

  private forward(client: Socket, target: { host: string; port: number }): void {
    const upstream = new Socket({ allowHalfOpen: true });
    upstream.setNoDelay(true);
    const connection = new ProxiedConnection(client, upstream, this);
    this.open.add(connection);
    // A server that refuses the connection is seen by the client as a reset, as it would be directly.
    upstream.once('error', () => {
      if (upstream.connecting || upstream.bytesWritten === 0) connection.reset();
    });
    upstream.connect({ host: target.host, port: target.port });
    client.resume();
  }
}

function validateMode(mode: FaultMode): void {
  if (typeof mode === 'object') {
    if (mode === null || !Number.isFinite(mode.delayMs) || mode.delayMs < 0) {
      throw new HarnessError(
        'TESTKIT_INVALID_ARGUMENT',
        `FaultProxy mode { delayMs } needs a non-negative number of ms, got ${JSON.stringify(mode)}`,
      );
    }
    return;
  }
  if (!['pass', 'blackhole', 'cut', 'reject', 'down'].includes(mode)) {
    throw new HarnessError(
      'TESTKIT_INVALID_ARGUMENT',
      `FaultProxy mode must be 'pass', 'blackhole', 'cut', 'reject', 'down' or { delayMs }, got ${JSON.stringify(mode)}`,
    );
  }
}
