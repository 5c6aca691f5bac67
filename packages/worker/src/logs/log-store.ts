import { mkdirSync } from 'node:fs';
import { open, readdir, stat, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { type Clock, NotFoundError, SchedError, systemClock, withDefaults } from '@sched/core';
import { AttemptLog } from './attempt-log.js';

export interface LogStoreOptions {
  /** Directory of the log files, usually `<dataDir>/logs`. Created if missing. */
  dir: string;
  /** Cap of one attempt's log file. @defaultValue 67108864 (64 MiB) */
  maxBytesPerAttempt?: number;
  /** Size of the tail kept for the result. @defaultValue 65536 (64 KiB) */
  tailBytes?: number;
  /** Finished logs older than this are removed by `purge`. @defaultValue 604800000 (7 days) */
  retentionMs?: number;
  clock?: Clock;
}

export const DEFAULT_LOG_STORE_OPTIONS = {
  maxBytesPerAttempt: 64 * 1024 * 1024,
  tailBytes: 64 * 1024,
  retentionMs: 7 * 24 * 3_600_000,
} as const satisfies Required<Pick<LogStoreOptions, 'maxBytesPerAttempt' | 'tailBytes' | 'retentionMs'>>;

const SAFE_ID = /^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$/;

/**
 * Attempt logs on the worker's disk: one file per attempt (`<attemptId>.log`), capped in size,
 * retained for a configured time, and followable while the attempt runs.
 */
export class LogStore {
  readonly dir: string;
  readonly maxBytesPerAttempt: number;
  readonly tailBytes: number;
  readonly retentionMs: number;
  private readonly clock: Clock;
  private readonly active = new Map<string, AttemptLog>();

  constructor(options: LogStoreOptions) {
    const opts = withDefaults(options, DEFAULT_LOG_STORE_OPTIONS);
    this.dir = opts.dir;
    this.maxBytesPerAttempt = opts.maxBytesPerAttempt;
    this.tailBytes = opts.tailBytes;
    this.retentionMs = opts.retentionMs;
    this.clock = opts.clock ?? systemClock;
    mkdirSync(this.dir, { recursive: true });
  }

  pathFor(attemptId: string): string {
    if (!SAFE_ID.test(attemptId)) {
      throw new SchedError(
        'ATTEMPT_ID_INVALID',
        `attempt id ${JSON.stringify(attemptId)} is not a safe file name`,
      );
    }
    return join(this.dir, `${attemptId}.log`);
  }

  /** Opens (appending to) the log of an attempt that starts now. */
  open(attemptId: string): AttemptLog {
    const log = new AttemptLog(attemptId, this.pathFor(attemptId), this.maxBytesPerAttempt, this.tailBytes);
    this.active.set(attemptId, log);
    log.onGrow(() => {
      if (log.closed && this.active.get(attemptId) === log) this.active.delete(attemptId);
    });
    return log;
  }

  /** Whether a log file exists for this attempt. */
  async exists(attemptId: string): Promise<boolean> {
    try {
      await stat(this.pathFor(attemptId));
      return true;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return false;
      throw err;
    }
  }

  isActive(attemptId: string): boolean {
    return this.active.has(attemptId);
  }

  /**
   * The log's bytes from `offset`, then, while the attempt runs, new bytes as they are written;
   * ends once the attempt's log is closed and fully read, or when `signal` aborts. With
   * `follow: false` it ends at the current end of the file.
   * @throws NotFoundError when there is no log for this attempt.
   */
  async *follow(
    attemptId: string,
    opts: { offset?: number; signal?: AbortSignal; follow?: boolean } = {},
  ): AsyncGenerator<Buffer> {
    const path = this.pathFor(attemptId);
    let handle: Awaited<ReturnType<typeof open>>;
    try {
      handle = await open(path, 'r');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') {
        throw new NotFoundError(`no log for attempt ${attemptId} on this worker`);
      }
      throw err;
    }
    let position = Math.max(0, opts.offset ?? 0);
    const buffer = Buffer.alloc(64 * 1024);
    try {
      for (;;) {
        if (opts.signal?.aborted) return;
        // Decide "finished" before reading: a log closed before this read has all its bytes in the file.
        const live = this.active.get(attemptId);
        const changesBefore = live?.changes;
        const { bytesRead } = await handle.read(buffer, 0, buffer.length, position);
        if (bytesRead > 0) {
          position += bytesRead;
          yield Buffer.from(buffer.subarray(0, bytesRead));
          continue;
        }
        if (!live || opts.follow === false) return;
        // Written or closed while we were reading: read again at once instead of waiting.
        if (live.changes !== changesBefore) continue;
        if (live.closed) return;
        await waitForGrowth(live, opts.signal);
      }
    } finally {
      await handle.close();
    }
  }

  /** Removes finished logs whose last write is older than the retention. Returns how many it removed. */
  async purge(): Promise<number> {
    const cutoff = this.clock.now() - this.retentionMs;
    let removed = 0;
    for (const name of await readdir(this.dir)) {
      if (!name.endsWith('.log')) continue;
      if (this.active.has(name.slice(0, -4))) continue;
      const path = join(this.dir, name);
      try {
        if ((await stat(path)).mtimeMs < cutoff) {
          await unlink(path);
          removed++;
        }
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
      }
    }
    return removed;
  }
}

/** Resolves on the next write or close of `log`, on abort, or after a second (a safety net, never relied on). */
function waitForGrowth(log: AttemptLog, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer);
      unsubscribe();
      signal?.removeEventListener('abort', done);
      resolve();
    };
    const timer = setTimeout(done, 1_000);
    const unsubscribe = log.onGrow(done);
    signal?.addEventListener('abort', done, { once: true });
  });
}
