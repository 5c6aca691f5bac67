// The nemesis (Jepsen's word): a bounded, seeded loop of faults against the chaos cluster.
//
//   kind       what it does to one daemon (or ZooKeeper server)          undone by
//   kill       kill -9 of the daemon's process group                     a fresh incarnation after 0.5–6 s
//   blackhole  every proxy on its links stops forwarding, sockets stay   proxies back to pass
//              open: ZooKeeper, the masters/workers it talks to, and
//              those that talk to it (TestCluster `linkProxies`)
//   cut        the same links are reset, new connections refused         proxies back to pass
//   pause      SIGSTOP of the daemon                                     SIGCONT
//   zk-kill    (ensemble only) kill -9 of one ZooKeeper server           restart on the same port and data
//   zk-leader-kill (ensemble only) kill -9 of the ensemble's current     restart on the same port and data
//              leader (a quorum election follows)
//   zk-restart-all (ensemble only) kill -9 of every server: ZooKeeper     every server restarted on its
//              is gone for everyone (short or past the session timeout)  port and data
//   pg-blackhole  (with PostgreSQL faults) a master's database link       proxy back to pass
//              stops forwarding; its ZooKeeper and peer links stay up
//   pg-cut     the same link is reset, new connections refused           proxy back to pass
//   pg-restart (with a restartable PostgreSQL) kill -9 of the whole      start on the same port and data
//              database server: every master loses it at once            after the span (crash recovery)
//
// Spans: 40 % are longer than the session timeout (the session expires, the node is failed
// over, and on healing it must fence itself and, as a zombie, exit); the rest are shorter (the
// session survives and nothing may be failed over). A new fault starts every 1–4 s, at most
// `maxConcurrent` at a time, never on a slot already faulted, and never so that all masters or
// all workers are faulted or down together; at most one ZooKeeper server is down at a time.
// With PostgreSQL faults, one of the first three faults is a PostgreSQL fault (so even a short
// run has one) and PostgreSQL is restarted at most once at a time; its spans are 0.5–6 s.
// `heal()` ends every span at once; each fault undoes itself and the run waits for that.
import type { PgServer, ZkServer } from '@sched/testkit';
import type { ClusterKeeper, Role, Slot } from './cluster-keeper.js';
import type { SeededRandom } from './random.js';
import { sleep } from './sleep.js';

export type FaultKind =
  | 'kill'
  | 'blackhole'
  | 'cut'
  | 'pause'
  | 'zk-kill'
  | 'zk-leader-kill'
  | 'zk-restart-all'
  | 'pg-blackhole'
  | 'pg-cut'
  | 'pg-restart';
export const faultKinds: FaultKind[] = [
  'kill',
  'blackhole',
  'cut',
  'pause',
  'zk-kill',
  'zk-leader-kill',
  'zk-restart-all',
  'pg-blackhole',
  'pg-cut',
  'pg-restart',
];
const PG_KINDS: readonly FaultKind[] = ['pg-blackhole', 'pg-cut', 'pg-restart'];

export interface NemesisOptions {
  durationMs: number;
  sessionTimeoutMs: number;
  /** @defaultValue 2 */
  maxConcurrent?: number;
  /** ZooKeeper servers the nemesis may kill (an ensemble); none for a single server. */
  zkServers?: ZkServer[];
  /**
   * PostgreSQL faults: black holes and cuts of one master's database link (the cluster needs
   * `pgProxies`), and with `server` restarts of the database server itself.
   */
  pgFaults?: { server?: Pick<PgServer, 'restart'> };
}

export const DEFAULT_NEMESIS_OPTIONS = { maxConcurrent: 2 } as const satisfies Required<
  Pick<NemesisOptions, 'maxConcurrent'>
>;

export interface FaultRecord {
  kind: FaultKind;
  target: string;
  startedAtMs: number;
  spanMs: number;
  /** Span longer than the session timeout. */
  long: boolean;
}

export class Nemesis {
  readonly faults: FaultRecord[] = [];
  readonly errors: string[] = [];
  private readonly abort = new AbortController();
  private readonly inFlight = new Set<Promise<void>>();
  private zkDown = false;
  private pgDown = false;
  private chosen = 0;

  constructor(
    private readonly keeper: ClusterKeeper,
    private readonly random: SeededRandom,
    private readonly opts: NemesisOptions,
    private readonly log: (line: string) => void,
  ) {}

  /** Runs faults for `durationMs`, then heals and waits until every fault has been undone. */
  async run(): Promise<void> {
    const endAt = Date.now() + this.opts.durationMs;
    const maxConcurrent = this.opts.maxConcurrent ?? DEFAULT_NEMESIS_OPTIONS.maxConcurrent;
    while (Date.now() < endAt) {
      await sleep(this.random.int(1000, 4000));
      if (Date.now() >= endAt) break;
      if (this.inFlight.size >= maxConcurrent) continue;
      const fault = this.choose();
      if (!fault) continue;
      const p = this.inject(fault.kind, fault.slot, fault.server).catch((error: unknown) => {
        this.errors.push(`${fault.kind}: ${(error as Error).message.split('\n')[0]}`);
      });
      this.inFlight.add(p);
      void p.finally(() => this.inFlight.delete(p));
    }
    await this.heal();
  }

  /** Ends every fault now and waits until each has been undone. */
  async heal(): Promise<void> {
    this.abort.abort();
    await Promise.all([...this.inFlight]);
  }

  countByKind(): Record<FaultKind, number> {
    const counts = Object.fromEntries(faultKinds.map((k) => [k, 0])) as Record<FaultKind, number>;
    for (const f of this.faults) counts[f.kind] += 1;
    return counts;
  }

  private choose(): { kind: FaultKind; slot?: Slot; server?: ZkServer } | undefined {
    const servers = this.opts.zkServers ?? [];
    const pg = this.opts.pgFaults;
    let kinds: FaultKind[] = ['kill', 'kill', 'blackhole', 'blackhole', 'cut', 'pause', 'pause'];
    if (servers.length > 1 && !this.zkDown) kinds.push('zk-kill', 'zk-leader-kill');
    // The whole ensemble at once is rarer: a fifth as likely as a single-server kill.
    if (servers.length > 1 && !this.zkDown && this.random.chance(0.2)) kinds.push('zk-restart-all');
    const pgKinds: FaultKind[] = pg ? ['pg-blackhole', 'pg-cut'] : [];
    if (pg?.server && !this.pgDown) pgKinds.push('pg-restart');
    kinds.push(...pgKinds);
    this.chosen += 1;
    // A short run still gets a PostgreSQL fault: the third choice is one if none came before.
    if (this.chosen >= 3 && pgKinds.length > 0 && !this.faults.some((f) => PG_KINDS.includes(f.kind)))
      kinds = pgKinds;
    const kind = this.random.pick(kinds);
    if (kind === 'zk-kill') return { kind, server: this.random.pick(servers) };
    if (kind === 'zk-leader-kill' || kind === 'zk-restart-all') return { kind };
    if (kind === 'pg-restart') return { kind };
    const role: Role =
      kind === 'pg-blackhole' || kind === 'pg-cut' ? 'master' : this.random.chance(0.5) ? 'master' : 'worker';
    // Never all of a role at once: at most (n - 1) faulted or down.
    const slots = this.keeper.of(role);
    if (this.keeper.impaired(role) >= slots.length - 1) return undefined;
    const candidates = slots.filter(
      (s) =>
        !s.faulted &&
        s.state === 'up' &&
        s.handle?.child.running &&
        (!PG_KINDS.includes(kind) || s.handle.pgProxy !== undefined),
    );
    if (candidates.length === 0) return undefined;
    return { kind, slot: this.random.pick(candidates) };
  }

  private span(): { spanMs: number; long: boolean } {
    const t = this.opts.sessionTimeoutMs;
    if (this.random.chance(0.4))
      return { spanMs: this.random.int(t + 1000, Math.round(t * 2.5)), long: true };
    return { spanMs: this.random.int(500, Math.round(t * 0.75)), long: false };
  }

  private async inject(kind: FaultKind, slot?: Slot, server?: ZkServer): Promise<void> {
    const signal = this.abort.signal;
    if (kind === 'zk-kill' && server) {
      const { spanMs, long } = this.span();
      this.zkDown = true;
      this.record(kind, `zookeeper:${server.port}`, spanMs, long);
      try {
        await server.kill();
        await sleep(spanMs, signal);
        await server.restart();
      } finally {
        this.zkDown = false;
      }
      return;
    }
    if (kind === 'zk-leader-kill' || kind === 'zk-restart-all') {
      const servers = this.opts.zkServers ?? [];
      const { spanMs, long } = this.span();
      this.zkDown = true;
      try {
        let victims = servers;
        if (kind === 'zk-leader-kill') {
          const modes = await Promise.all(servers.map((sv) => sv.fourLetterWord('srvr').catch(() => '')));
          const leader = servers.find((_, i) => /Mode: leader/.test(modes[i] ?? ''));
          if (!leader) return; // mid-election: nothing to aim at now
          victims = [leader];
        }
        this.record(
          kind,
          kind === 'zk-leader-kill' ? `zookeeper leader:${victims[0]?.port}` : 'zookeeper ensemble',
          spanMs,
          kind === 'zk-restart-all' && long,
        );
        await Promise.all(victims.map((sv) => sv.kill()));
        await sleep(spanMs, signal);
        await Promise.all(victims.map((sv) => sv.restart()));
      } finally {
        this.zkDown = false;
      }
      return;
    }
    if (kind === 'pg-restart') {
      const spanMs = this.random.int(500, 6000);
      this.pgDown = true;
      this.record(kind, 'postgresql', spanMs, false);
      try {
        // kill -9 now; the restart (crash recovery, same port) after the span.
        await this.opts.pgFaults?.server?.restart({ downMs: spanMs });
      } finally {
        this.pgDown = false;
      }
      return;
    }
    if (!slot?.handle) return;
    const handle = slot.handle;
    slot.faulted = true;
    try {
      if (kind === 'kill') {
        const restartAfterMs = this.random.int(500, 6000);
        this.record(kind, `${slot.name}.${slot.generation} ${handle.key}`, restartAfterMs, false);
        await this.keeper.kill(slot);
        await sleep(restartAfterMs, signal);
        await this.keeper.start(slot);
        return;
      }
      const { spanMs, long } = this.span();
      this.record(kind, `${slot.name}.${slot.generation} ${handle.key}`, spanMs, long);
      if (kind === 'pause') {
        handle.child.pause();
        await sleep(spanMs, signal);
        handle.child.resume();
      } else if (kind === 'pg-blackhole' || kind === 'pg-cut') {
        handle.pgProxy?.setMode(kind === 'pg-blackhole' ? 'blackhole' : 'down');
        await sleep(spanMs, signal);
        handle.pgProxy?.setMode('pass');
      } else {
        this.keeper.cluster.partition(handle, kind === 'blackhole' ? 'blackhole' : 'down');
        await sleep(spanMs, signal);
        this.keeper.cluster.partition(handle, 'pass');
      }
      // After a long span the daemon was failed over and should exit as a zombie; keep the slot
      // counted as faulted meanwhile, so the nemesis does not take the rest of its role down too.
      if (long && !PG_KINDS.includes(kind)) await Promise.race([handle.child.exited, sleep(6000)]);
    } finally {
      slot.faulted = false;
    }
  }

  private record(kind: FaultKind, target: string, spanMs: number, long: boolean): void {
    this.faults.push({ kind, target, startedAtMs: Date.now(), spanMs, long });
    this.log(
      `nemesis: ${kind} ${target} for ${(spanMs / 1000).toFixed(1)} s${long ? ' (> session timeout)' : ''}`,
    );
  }
}
