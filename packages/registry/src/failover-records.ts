import { type Clock, type Logger, systemClock } from '@sched/core';
import { z } from 'zod';
import { isZkError } from './errors.js';
import { decodeJson, encodeJson } from './json-node.js';
import type { MemberRole, RegistryPaths } from './registry-paths.js';
import type { ZkSession } from './zk-session.js';

/**
 * FAILOVER_FINISH_NODES (docs/design.md#failover-finish-nodes): a persistent record
 * `{root}/failover-finish-nodes/{role}/{host:port_startTime}` written by the leader once an
 * incarnation has been failed over. The incarnation itself, on getting a new session, looks
 * for its own record (and watches for it): if present, it was failed over and must exit.
 */
export const failoverRecordSchema = z.looseObject({
  role: z.enum(['master', 'worker']),
  /** `host:port` */
  address: z.string().min(1),
  startTime: z.number().int().nonnegative(),
  pid: z.number().int().positive().nullable(),
  /** Hex session id of the failed registration, when known. */
  sessionId: z.string().nullable(),
  /** ISO 8601 with milliseconds. */
  failedOverAt: z.string(),
  /** Incarnation key of the leader that did it. */
  by: z.string(),
  tasks: z.number().int().nonnegative(),
  runs: z.number().int().nonnegative(),
});
export type FailoverRecord = z.infer<typeof failoverRecordSchema>;

export interface WatchHandle {
  stop(): void;
}

export class FailoverRecords {
  private readonly log: Logger | undefined;
  private readonly clock: Clock;

  constructor(
    private readonly session: ZkSession,
    private readonly paths: RegistryPaths,
    opts: { clock?: Clock; logger?: Logger } = {},
  ) {
    this.clock = opts.clock ?? systemClock;
    this.log = opts.logger?.child({ component: 'failover-records' });
  }

  /**
   * Writes the record for `key` (`host:port_startTime`). Idempotent: if a record exists it is
   * kept (the first failover is the one that counts) and `created` is false.
   */
  async write(key: string, record: FailoverRecord): Promise<{ created: boolean }> {
    const value = failoverRecordSchema.parse(record);
    await this.session.mkdirp(this.paths.failoverRecords(value.role));
    try {
      await this.session.create(this.paths.failoverRecord(value.role, key), encodeJson(value));
      return { created: true };
    } catch (err) {
      if (isZkError(err, 'NODE_EXISTS')) return { created: false };
      throw err;
    }
  }

  async read(role: MemberRole, key: string): Promise<FailoverRecord | undefined> {
    const path = this.paths.failoverRecord(role, key);
    try {
      const { data } = await this.session.getData(path);
      return decodeJson(path, data, failoverRecordSchema);
    } catch (err) {
      if (isZkError(err, 'NO_NODE')) return undefined;
      throw err;
    }
  }

  /** All records (of one role, or both), with their keys, sorted by key. */
  async list(role?: MemberRole): Promise<{ key: string; record: FailoverRecord }[]> {
    const roles: MemberRole[] = role ? [role] : ['master', 'worker'];
    const out: { key: string; record: FailoverRecord }[] = [];
    for (const r of roles) {
      let children: string[];
      try {
        ({ children } = await this.session.getChildren(this.paths.failoverRecords(r)));
      } catch (err) {
        if (isZkError(err, 'NO_NODE')) continue;
        throw err;
      }
      for (const key of children.sort()) {
        const record = await this.read(r, key);
        if (record) out.push({ key, record });
      }
    }
    return out;
  }

  /**
   * Calls `onRecord` once when the record for (`role`, `key`) exists — at once if it already
   * does, or as soon as it is created. The watch is re-armed after reconnects and new sessions.
   */
  watchFor(role: MemberRole, key: string, onRecord: (record: FailoverRecord) => void): WatchHandle {
    const path = this.paths.failoverRecord(role, key);
    let stopped = false;
    let armedGeneration = -1;
    const check = async (arm: boolean) => {
      if (stopped) return;
      const generation = this.session.generation;
      const stat = await this.session.exists(
        path,
        arm
          ? () => {
              armedGeneration = -1;
              void check(true).catch(retry);
            }
          : undefined,
      );
      if (arm) armedGeneration = generation;
      if (stat && !stopped) {
        const record = await this.read(role, key);
        if (record && !stopped) {
          stopped = true;
          off();
          onRecord(record);
        }
      }
    };
    const retry = (err: unknown) => {
      this.log?.debug({ err }, 'checking the failover record failed; retrying');
      if (!stopped)
        setTimeout(() => void check(armedGeneration !== this.session.generation).catch(retry), 500).unref();
    };
    const off = this.session.on('status', (s) => {
      if (s.kind === 'RECONNECTED' || s.kind === 'CONNECTED') {
        void check(armedGeneration !== this.session.generation).catch(retry);
      }
    });
    void check(true).catch(retry);
    return {
      stop: () => {
        stopped = true;
        off();
      },
    };
  }

  /**
   * Deletes records whose `failedOverAt` is older than `retentionMs` (wall clock; an
   * unreadable record falls back to the znode's ctime). Returns the deleted paths.
   */
  async purge(retentionMs: number): Promise<string[]> {
    const cutoff = this.clock.now() - retentionMs;
    const removed: string[] = [];
    for (const role of ['master', 'worker'] as const) {
      const dir = this.paths.failoverRecords(role);
      let children: string[];
      try {
        ({ children } = await this.session.getChildren(dir));
      } catch (err) {
        if (isZkError(err, 'NO_NODE')) continue;
        throw err;
      }
      for (const key of children) {
        const path = `${dir}/${key}`;
        try {
          const { data, stat } = await this.session.getData(path);
          let at = stat.ctime;
          try {
            const parsed = Date.parse(decodeJson(path, data, failoverRecordSchema).failedOverAt);
            if (Number.isFinite(parsed)) at = parsed;
          } catch {
            // keep ctime
          }
          if (at < cutoff) {
            await this.session.remove(path, stat.version);
            removed.push(path);
          }
        } catch (err) {
          if (!isZkError(err, 'NO_NODE') && !isZkError(err, 'BAD_VERSION')) throw err;
        }
      }
    }
    return removed;
  }
}
