import type { Logger } from '@sched/core';
import { parseIncarnationKey } from '@sched/core';
import { isZkError, ZnodeDataError } from './errors.js';
import { type Heartbeat, masterHeartbeatSchema, workerHeartbeatSchema } from './heartbeat.js';
import { decodeJson } from './json-node.js';
import type { MemberRole, RegistryPaths } from './registry-paths.js';
import type { ZnodeStat } from './stat.js';
import { TypedEmitter } from './typed-emitter.js';
import type { ZkSession } from './zk-session.js';

/**
 * A live, typed view of the registered masters or workers: the children of
 * `{root}/masters|workers` with their heartbeats, kept current with one child watch on the
 * parent and one data watch per member, and announced as `added` / `updated` / `removed`.
 *
 * Watches can miss transitions (a node created and deleted while we were disconnected), so
 * after every reconnect and every new session the view re-reads everything and emits the
 * difference; it never assumes it saw every change.
 */
export interface Member {
  role: MemberRole;
  /** `host:port_startTime` */
  key: string;
  address: string;
  startTime: number;
  heartbeat: Heartbeat;
  /** Session owning the ephemeral node (hex). */
  sessionId: string | undefined;
  czxid: bigint;
  /** Data version; grows with each heartbeat. */
  version: number;
}

export interface MembersViewEvents {
  added: [member: Member];
  updated: [member: Member, previous: Member];
  removed: [member: Member];
  /** A member's data could not be read or validated (the member is left out). */
  error: [err: unknown];
}

export class MembersView extends TypedEmitter<MembersViewEvents> {
  private readonly members = new Map<string, Member>();
  private readonly parent: string;
  private readonly log: Logger | undefined;
  private readonly dataWatched = new Set<string>();
  private watchGeneration = -1;
  private childWatchArmed = false;
  private syncing: Promise<void> | undefined;
  private dirty = false;
  private stopped = false;
  private offs: (() => void)[] = [];

  constructor(
    private readonly session: ZkSession,
    paths: RegistryPaths,
    readonly role: MemberRole,
    opts: { logger?: Logger } = {},
  ) {
    super();
    this.parent = paths.members(role);
    this.log = opts.logger?.child({ component: 'members-view', role });
  }

  /** Loads the current members; resolves when the first full read is done. */
  async start(): Promise<void> {
    await this.session.mkdirp(this.parent);
    this.offs.push(
      this.session.on('status', (s) => {
        if (s.kind === 'RECONNECTED') this.requestSync();
      }),
    );
    await this.sync();
  }

  stop(): void {
    this.stopped = true;
    for (const off of this.offs) off();
    this.offs = [];
  }

  /** Members sorted by key. */
  list(): Member[] {
    return [...this.members.values()].sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
  }

  get(key: string): Member | undefined {
    return this.members.get(key);
  }

  /** Re-reads everything now (also done after every reconnect). */
  sync(): Promise<void> {
    this.dirty = true;
    if (!this.syncing) {
      this.syncing = (async () => {
        try {
          while (this.dirty && !this.stopped) {
            this.dirty = false;
            await this.syncOnce();
          }
        } finally {
          this.syncing = undefined;
        }
      })();
    }
    return this.syncing;
  }

  private requestSync(): void {
    this.sync().catch((err) => {
      // A view stopped while a sync was in flight (daemon shutdown) has nothing to retry.
      if (this.stopped) return;
      this.log?.warn({ err }, 'member sync failed; retrying on the next change or reconnect');
      setTimeout(() => this.requestSync(), 500).unref();
    });
  }

  private async syncOnce(): Promise<void> {
    const generation = this.session.generation;
    if (generation !== this.watchGeneration) {
      this.watchGeneration = generation;
      this.dataWatched.clear();
      this.childWatchArmed = false;
    }
    const armChild = !this.childWatchArmed;
    const { children } = await this.session.getChildren(
      this.parent,
      armChild
        ? (e) => {
            if (generation !== this.watchGeneration) return;
            this.childWatchArmed = false;
            if (e.type === 'childrenChanged' || e.type === 'deleted') this.requestSync();
          }
        : undefined,
    );
    if (armChild) this.childWatchArmed = true;
    const present = new Set(children);
    for (const [key, member] of this.members) {
      if (!present.has(key)) {
        this.members.delete(key);
        this.dataWatched.delete(key);
        this.emit('removed', member);
      }
    }
    await Promise.all(children.map((key) => this.load(key, generation)));
  }

  private async load(key: string, generation: number): Promise<void> {
    const path = `${this.parent}/${key}`;
    const arm = !this.dataWatched.has(key);
    let data: Buffer;
    let stat: ZnodeStat;
    try {
      ({ data, stat } = await this.session.getData(
        path,
        arm
          ? (e) => {
              if (generation !== this.watchGeneration) return;
              this.dataWatched.delete(key);
              if (e.type === 'dataChanged') this.reload(key);
              else this.requestSync();
            }
          : undefined,
      ));
    } catch (err) {
      if (isZkError(err, 'NO_NODE')) {
        const gone = this.members.get(key);
        if (gone) {
          this.members.delete(key);
          this.emit('removed', gone);
        }
        return;
      }
      throw err;
    }
    if (arm) this.dataWatched.add(key);
    const previous = this.members.get(key);
    if (previous && previous.czxid === stat.czxid && previous.version === stat.version) return;
    let member: Member;
    try {
      const id = parseIncarnationKey(key);
      const schema = this.role === 'worker' ? workerHeartbeatSchema : masterHeartbeatSchema;
      member = {
        role: this.role,
        key,
        address: id.address,
        startTime: id.startTime,
        heartbeat: decodeJson(path, data, schema),
        sessionId: stat.ephemeralOwner,
        czxid: stat.czxid,
        version: stat.version,
      };
    } catch (err) {
      this.emit(
        'error',
        err instanceof ZnodeDataError ? err : new ZnodeDataError(path, String(err), { cause: err }),
      );
      return;
    }
    this.members.set(key, member);
    if (!previous) this.emit('added', member);
    else if (previous.czxid !== member.czxid) {
      // Same key, new znode: the old registration went away and came back.
      this.emit('removed', previous);
      this.emit('added', member);
    } else this.emit('updated', member, previous);
  }

  private reload(key: string): void {
    this.load(key, this.watchGeneration).catch((err) => {
      if (this.stopped) return;
      this.log?.warn({ err, key }, 'reading a member failed; resyncing');
      this.requestSync();
    });
  }
}
