import { randomUUID } from 'node:crypto';
import {
  type Clock,
  type Logger,
  SchedError,
  systemClock,
  type WithDefaults,
  withDefaults,
} from '@sched/core';
import { isZkError, LeadershipLostError } from './errors.js';
import { type ProtectedNode, parseSequentialName, protectedCreate } from './protected-create.js';
import type { RegistryPaths } from './registry-paths.js';
import type { SessionStatus } from './session-status.js';
import { TypedEmitter } from './typed-emitter.js';
import { Wakeup } from './wakeup.js';
import type { ZkSession } from './zk-session.js';

/**
 * Leader election (docs/design.md#leader-election; ZooKeeper's recipe, Curator LeaderLatch's checks):
 *
 * - each candidate is a protected ephemeral sequential node `{root}/election/{guid}-n_{seq}`
 *   holding its incarnation key; the lowest sequence leads;
 * - a candidate watches only its predecessor (no herd effect: when the leader goes, one
 *   watch fires);
 * - before leading, the candidate checks that the lowest node's `ephemeralOwner` is its own
 *   live session (a node of an older session of ours must not make us leader) and that the
 *   lease holds;
 * - each term gets a fencing token: the czxid of the candidate node, which only grows across
 *   the ensemble's history. A term never reuses a node: after any loss the candidate node is
 *   replaced, so a later term always has a larger token. A history ends when ZooKeeper's data is
 *   reset (a new ensemble, a lost dataDir: czxids start again from low), so the term also
 *   carries the id of the ZooKeeper data, `{root}/cluster-id` (a persistent znode made once
 *   with a random id, read at the start of every term); tokens compare only under one id
 *   (docs/decisions/0006-leader-epoch-zookeeper-generation.md);
 * - leadership ends the moment the session is SUSPENDED (default, Curator's standard policy)
 *   or only at LOST (`endOn: 'lost'`), when the candidate node disappears, or on close —
 *   synchronously with the status change, not when ZooKeeper gets round to telling us.
 *
 * | state      | event                                   | next                           |
 * |------------|-----------------------------------------|--------------------------------|
 * | idle       | start()                                 | candidate                      |
 * | candidate  | lowest, owner = our session, lease ok   | leader (term starts, `elected`)|
 * | candidate  | predecessor deleted / reconnected       | candidate (re-check)           |
 * | candidate  | LOST                                    | candidate (new node, new session) |
 * | leader     | SUSPENDED (endOn=suspended), LOST,       | candidate (term ends, `revoked`; |
 * |            | node deleted, onLeadership returned      |  node replaced)                |
 * | any        | close()                                 | closed (term ends, node deleted)|
 */
export interface LeadershipTerm {
  /** Fencing token: czxid of the candidate node. Strictly grows from term to term under one `clusterId`. */
  readonly token: bigint;
  /** Id of the ZooKeeper data the token comes from (`{root}/cluster-id`); a reset ZooKeeper has a new one. */
  readonly clusterId: string;
  readonly sequence: number;
  /** Full path of the candidate node. */
  readonly node: string;
  readonly sessionId: string;
  readonly generation: number;
  /** Monotonic ms the term started. */
  readonly startedAt: number;
  /** Aborted (with a LeadershipLostError) the moment the term ends. */
  readonly signal: AbortSignal;
  /** Throws LeadershipLostError if the term ended, or the session lease does not hold now. */
  check(): void;
}

export interface LeaderElectionOptions {
  /** Incarnation key of this process (docs/design.md#identity), stored in the candidate node. */
  nodeKey: string;
  /** When leadership ends on connection trouble. @defaultValue 'suspended' */
  endOn?: 'suspended' | 'lost';
  /**
   * Called at the start of every term; leadership is kept while it runs (or until the term
   * ends). When it returns or throws, leadership is given up and the candidate re-queues.
   * Without it, leadership is kept until lost or closed.
   */
  onLeadership?: (term: LeadershipTerm) => Promise<void>;
  clock?: Clock;
  logger?: Logger;
}

/** `{root}/cluster-id`: the id of this ZooKeeper's data (docs/design.md#znodes). */
export function clusterIdPath(paths: RegistryPaths): string {
  return `${paths.root}/cluster-id`;
}

/**
 * The id of this ZooKeeper's data: `{root}/cluster-id`, created with a random UUID by the first
 * caller that finds it missing (a new cluster, or a ZooKeeper whose data was reset); everyone
 * else reads the winner's.
 */
export async function readOrCreateClusterId(session: ZkSession, paths: RegistryPaths): Promise<string> {
  const path = clusterIdPath(paths);
  for (let attempt = 1; attempt <= 5; attempt++) {
    let read: { data: Buffer; stat: { version: number } };
    try {
      read = await session.getData(path);
    } catch (err) {
      if (!isZkError(err, 'NO_NODE')) throw err;
      await session.mkdirp(paths.root);
      await session.create(path, Buffer.from(randomUUID()), { mode: 'persistent' }).catch((e) => {
        if (!isZkError(e, 'NODE_EXISTS')) throw e;
      });
      continue; // read what won
    }
    const id = read.data.toString('utf8').trim();
    if (id) return id;
    // Empty (made by hand): give it an id, unless another caller did first.
    await session.setData(path, Buffer.from(randomUUID()), read.stat.version).catch((e) => {
      if (!isZkError(e, 'BAD_VERSION')) throw e;
    });
  }
  throw new SchedError('ZK_CLUSTER_ID', `${path}: could not read or create the ZooKeeper cluster id`);
}

export const DEFAULT_LEADER_ELECTION_OPTIONS = { endOn: 'suspended' } as const satisfies Required<
  Pick<LeaderElectionOptions, 'endOn'>
>;

export interface LeaderElectionEvents {
  elected: [term: LeadershipTerm];
  revoked: [term: LeadershipTerm, reason: string, endedAt: number];
  error: [err: unknown];
}

interface Term extends LeadershipTerm {
  controller: AbortController;
}

export class LeaderElection extends TypedEmitter<LeaderElectionEvents> {
  /** How many predecessor watches of this candidate fired (no-herd check). */
  predecessorNotifications = 0;
  private readonly opts: WithDefaults<LeaderElectionOptions, typeof DEFAULT_LEADER_ELECTION_OPTIONS>;
  private readonly clock: Clock;
  private readonly log: Logger | undefined;
  private readonly wakeup = new Wakeup();
  private readonly parent: string;
  private readonly paths: RegistryPaths;
  private term: Term | undefined;
  private candidate: (ProtectedNode & { generation: number }) | undefined;
  private replaceCandidate = false;
  private watched: { path: string; generation: number } | undefined;
  private offStatus: (() => void) | undefined;
  private loopDone: Promise<void> | undefined;
  private closed = false;

  constructor(
    private readonly session: ZkSession,
    paths: RegistryPaths,
    opts: LeaderElectionOptions,
  ) {
    super();
    this.opts = withDefaults(opts, DEFAULT_LEADER_ELECTION_OPTIONS);
    this.parent = paths.election;
    this.paths = paths;
    this.clock = opts.clock ?? systemClock;
    this.log = opts.logger?.child({ component: 'election' });
  }

  get currentTerm(): LeadershipTerm | undefined {
    return this.term;
  }

  isLeader(): boolean {
    return this.term !== undefined && !this.term.signal.aborted;
  }

  /** Path of our current candidate node, if any. */
  get candidateNode(): string | undefined {
    return this.candidate?.path;
  }

  start(): void {
    if (this.loopDone) return;
    this.offStatus = this.session.on('status', (s) => this.onStatus(s));
    this.loopDone = this.loop();
  }

  /** Resolves with the next term that starts (or the current one). */
  waitForLeadership(timeoutMs: number): Promise<LeadershipTerm> {
    if (this.term) return Promise.resolve(this.term);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        off();
        reject(new LeadershipLostError('timeout', `not elected within ${timeoutMs} ms`));
      }, timeoutMs);
      const off = this.once('elected', (t) => {
        clearTimeout(timer);
        resolve(t);
      });
    });
  }

  /** Ends any term, leaves the election (deletes the candidate node) and stops. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.revoke('closed');
    this.offStatus?.();
    this.wakeup.wake();
    await this.loopDone;
    const node = this.candidate;
    this.candidate = undefined;
    if (node && node.generation === this.session.generation) {
      await this.session.remove(node.path).catch((err) => {
        if (!isZkError(err, 'NO_NODE')) this.log?.warn({ err }, 'could not delete the candidate node');
      });
    }
  }

  private onStatus(s: SessionStatus): void {
    if (s.kind === 'SUSPENDED' && this.opts.endOn === 'suspended') this.revoke('suspended');
    if (s.kind === 'LOST') {
      this.revoke('lost');
      this.candidate = undefined;
      this.watched = undefined;
    }
    if (s.kind === 'CLOSED') this.revoke('session-closed');
    this.wakeup.wake();
  }

  private revoke(reason: string): void {
    const term = this.term;
    if (!term) return;
    this.term = undefined;
    const endedAt = this.clock.monotonic();
    // A term's node is never reused: the next term gets a new node and so a larger token.
    this.replaceCandidate = true;
    term.controller.abort(new LeadershipLostError(reason));
    this.log?.info({ reason, fencingToken: term.token.toString() }, 'leadership ended');
    this.emit('revoked', term, reason, endedAt);
    this.wakeup.wake();
  }

  private async loop(): Promise<void> {
    let failures = 0;
    while (!this.closed) {
      try {
        await this.step();
        failures = 0;
      } catch (err) {
        if (this.closed) break;
        failures++;
        const code = (err as { code?: string }).code;
        if (
          code !== 'SESSION_LOST' &&
          code !== 'SESSION_SUSPENDED' &&
          code !== 'TIMEOUT' &&
          code !== 'ZK_CONNECTION_LOSS'
        ) {
          this.log?.error({ err }, 'election step failed');
          this.emit('error', err);
        }
        this.wakeup.reset();
        await this.wakeup.wait(Math.min(2000, 50 * 2 ** Math.min(failures, 6)));
      }
    }
  }

  private async step(): Promise<void> {
    this.wakeup.reset();
    const s = this.session.status;
    if (s.kind !== 'CONNECTED' && s.kind !== 'RECONNECTED') {
      await this.wakeup.wait(); // a status change wakes us
      return;
    }
    const lease = this.session.checkLease();
    if (this.candidate && (this.replaceCandidate || this.candidate.generation !== lease.generation)) {
      const old = this.candidate;
      this.candidate = undefined;
      if (old.generation === lease.generation) {
        await this.session.remove(old.path).catch((err) => {
          if (!isZkError(err, 'NO_NODE')) throw err;
        });
      }
    }
    this.replaceCandidate = false;
    if (!this.candidate) {
      await this.session.mkdirp(this.parent);
      const node = await protectedCreate(this.session, this.parent, 'n_', {
        data: Buffer.from(this.opts.nodeKey),
        mode: 'ephemeral-sequential',
      });
      this.candidate = { ...node, generation: lease.generation };
    }
    const me = this.candidate;
    const { children } = await this.session.getChildren(this.parent);
    const queue = children
      .map((name) => ({ name, parsed: parseSequentialName(name) }))
      .filter(
        (c): c is { name: string; parsed: { guid: string; sequence: number } } => c.parsed !== undefined,
      )
      .sort((a, b) => a.parsed.sequence - b.parsed.sequence);
    const index = queue.findIndex((c) => c.name === me.name);
    if (index < 0) {
      this.log?.warn({ node: me.path }, 'our candidate node is gone; creating a new one');
      this.candidate = undefined;
      return;
    }
    if (index === 0) {
      await this.lead(me);
      return;
    }
    const predecessor = `${this.parent}/${(queue[index - 1] as { name: string }).name}`;
    const armed = this.watched?.path === predecessor && this.watched.generation === me.generation;
    const stat = await this.session.exists(
      predecessor,
      armed
        ? undefined
        : (e) => {
            if (this.watched?.path === predecessor) this.watched = undefined;
            if (e.type === 'deleted') this.predecessorNotifications++;
            this.wakeup.wake();
          },
    );
    if (!armed) this.watched = { path: predecessor, generation: me.generation };
    if (!stat) return;
    await this.wakeup.wait();
  }

  private async lead(me: ProtectedNode & { generation: number }): Promise<void> {
    // Read before the node's stat: both then come from the same session (checked below), so
    // from the same ZooKeeper data — a reset one does not know this session.
    const clusterId = await readOrCreateClusterId(this.session, this.paths);
    const stat = await this.session.exists(me.path);
    const lease = this.session.checkLease();
    if (!stat || stat.ephemeralOwner !== lease.sessionId || lease.generation !== me.generation) {
      // Curator LeaderLatch: the lowest node is not owned by our live session — start over.
      this.log?.warn(
        { node: me.path, owner: stat?.ephemeralOwner },
        'lowest candidate is not ours in this session',
      );
      this.candidate = undefined;
      return;
    }
    const controller = new AbortController();
    const term: Term = {
      token: stat.czxid,
      clusterId,
      sequence: me.sequence,
      node: me.path,
      sessionId: lease.sessionId,
      generation: lease.generation,
      startedAt: this.clock.monotonic(),
      signal: controller.signal,
      controller,
      check: () => {
        if (controller.signal.aborted) throw controller.signal.reason as Error;
        try {
          this.session.checkLease({ allowSuspended: this.opts.endOn === 'lost' });
        } catch (err) {
          throw new LeadershipLostError('lease', `leadership cannot be used: ${(err as Error).message}`);
        }
        if (controller.signal.aborted) throw controller.signal.reason as Error;
      },
    };
    this.term = term;
    this.log?.info({ fencingToken: term.token.toString(), clusterId, node: me.path }, 'elected leader');
    this.emit('elected', term);
    // Our node deleted under us (an operator, or the server expiring the session) ends the term.
    void this.session
      .exists(me.path, (e) => {
        if (e.type === 'deleted' && this.term === term) this.revoke('node-deleted');
      })
      .then((st) => {
        if (!st && this.term === term) this.revoke('node-deleted');
      })
      .catch(() => {});
    if (this.opts.onLeadership) {
      try {
        await this.opts.onLeadership(term);
      } catch (err) {
        if (!term.signal.aborted) this.log?.error({ err }, 'onLeadership threw; giving up leadership');
      }
      if (this.term === term) this.revoke('relinquished');
      return;
    }
    while (this.term === term && !this.closed) await this.wakeup.wait();
  }
}
