// Keeps the chaos cluster's 3 masters and 3 workers alive: each is a slot whose daemon may be
// replaced. The nemesis kills daemons on purpose (and restarts them itself); any other exit is
// recorded and the slot is restarted with a fresh incarnation after a second — a zombie that
// found its FAILOVER_FINISH_NODES record exits with code 3, and a master that stepped out (cut
// from PostgreSQL while another master was not) with code 4; both are expected.
//
// Slot states:
//   up          a daemon is running
//   down        its daemon exited (killed by the nemesis, or on its own); restart pending
//   starting    a fresh daemon is starting
// A slot is `faulted` while the nemesis holds a fault on it (any state).

import { sleep } from './sleep.js';
import type { DaemonHandle, TestCluster } from './test-cluster.js';

export type Role = 'master' | 'worker';

export interface Slot {
  readonly role: Role;
  readonly name: string;
  handle: DaemonHandle | undefined;
  state: 'up' | 'down' | 'starting';
  faulted: boolean;
  generation: number;
  /** The current daemon is being killed by the nemesis: its exit is not a surprise. */
  expectExit: boolean;
}

export interface DaemonExit {
  slot: string;
  key: string;
  code: number | null;
  signal: string | null;
  atMs: number;
}

export class ClusterKeeper {
  readonly slots: Slot[] = [];
  /** Exits the nemesis did not cause (zombies exiting with code 3, crashes). */
  readonly unexpectedExits: DaemonExit[] = [];
  readonly startFailures: string[] = [];
  restarts = 0;
  /** Incarnation key of every daemon started, by node name (`worker-2.3`), as tasks log it. */
  readonly nodeKeys = new Map<string, string>();
  private closed = false;

  constructor(
    readonly cluster: TestCluster,
    private readonly log: (line: string) => void,
    counts: { masters: number; workers: number } = { masters: 3, workers: 3 },
  ) {
    for (let i = 1; i <= counts.masters; i++) this.slots.push(this.newSlot('master', `master-${i}`));
    for (let i = 1; i <= counts.workers; i++) this.slots.push(this.newSlot('worker', `worker-${i}`));
  }

  private newSlot(role: Role, name: string): Slot {
    return { role, name, handle: undefined, state: 'down', faulted: false, generation: 0, expectExit: false };
  }

  of(role: Role): Slot[] {
    return this.slots.filter((s) => s.role === role);
  }

  async startAll(): Promise<void> {
    // Every slot's inbound proxy first (with peer proxies), so each daemon gets an outbound
    // proxy to every peer slot. Masters one by one, so the first is the leader; workers together.
    for (const slot of this.slots) await this.cluster.reserveSlot(slot.role, slot.name);
    for (const slot of this.of('master')) await this.start(slot);
    await Promise.all(this.of('worker').map((slot) => this.start(slot)));
  }

  /** Starts a fresh incarnation in the slot, retrying (a ZooKeeper server may be down) until it is up or the keeper closes. */
  async start(slot: Slot): Promise<void> {
    // One start at a time per slot (the nemesis, the exit watcher and healing may all ask).
    if (slot.state !== 'down') return;
    slot.state = 'starting';
    for (let attempt = 1; !this.closed; attempt++) {
      slot.generation += 1;
      const node = `${slot.name}.${slot.generation}`;
      try {
        const env = { CHAOS_NODE: node };
        const handle =
          slot.role === 'master'
            ? await this.cluster.startMaster(env, slot.name)
            : await this.cluster.startWorker(env, slot.name);
        if (slot.generation > 1) this.restarts += 1;
        slot.handle = handle;
        slot.expectExit = false;
        slot.state = 'up';
        this.nodeKeys.set(node, handle.key);
        this.log(`${node} is ${handle.key}`);
        this.watch(slot, handle);
        return;
      } catch (error) {
        this.startFailures.push(`${node}: ${(error as Error).message.split('\n')[0]}`);
        this.log(`${node} did not start (attempt ${attempt}); retrying`);
        await sleep(1000);
      }
    }
    slot.state = 'down';
  }

  private watch(slot: Slot, handle: DaemonHandle): void {
    void handle.child.exited.then((exit) => {
      if (slot.handle !== handle) return;
      slot.state = 'down';
      if (slot.expectExit || this.closed) return;
      this.unexpectedExits.push({
        slot: slot.name,
        key: handle.key,
        code: exit.code,
        signal: exit.signal,
        atMs: Date.now(),
      });
      this.log(`${slot.name} (${handle.key}) exited by itself: code ${exit.code}, signal ${exit.signal}`);
      void sleep(1000).then(() => (this.closed || slot.state !== 'down' ? undefined : this.start(slot)));
    });
  }

  /** kill -9 of the slot's daemon (its process group); resolves once it is dead. */
  async kill(slot: Slot): Promise<void> {
    const handle = slot.handle;
    if (!handle?.child.running) return;
    slot.expectExit = true;
    await handle.child.kill9();
    slot.state = 'down';
  }

  /** Number of the role's slots that are faulted or not up. */
  impaired(role: Role): number {
    return this.of(role).filter((s) => s.faulted || s.state !== 'up').length;
  }

  /** Restarts every slot that is down (after healing). */
  async ensureAllUp(): Promise<void> {
    await Promise.all(this.slots.filter((s) => s.state === 'down').map((s) => this.start(s)));
  }

  /** Waits (bounded) until every slot is up. */
  async waitAllUp(timeoutMs: number): Promise<boolean> {
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      if (this.slots.every((s) => s.state === 'up')) return true;
      await this.ensureAllUp();
      await sleep(250);
    }
    return this.slots.every((s) => s.state === 'up');
  }

  close(): void {
    this.closed = true;
  }
}
