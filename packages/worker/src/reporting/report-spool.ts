import { mkdir, open, readdir, readFile, rename, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import type { Logger } from '@sched/core';
import { type AttemptReport, isAttemptReport } from '@sched/protocol';

/**
 * Reports not yet acknowledged by a master, on the worker's disk (`<dataDir>/spool`), so that a
 * master crash, a network cut or a worker restart loses none of them.
 *
 * Layout: one segment file per group commit, `<first seq, 16 digits>.jsonl`, one report per line.
 * A segment is written to `*.tmp`, fsync'd, renamed into place and the directory fsync'd: after
 * `append` resolves the reports survive a crash, and a crash mid-write leaves only a `.tmp` that
 * replay ignores. A segment is deleted once every report in it is acknowledged; a crash before the
 * delete means some acknowledged reports are sent again, which the master's conditional update
 * absorbs (delivery is at least once; application is exactly once).
 */
export class ReportSpool {
  private readonly segments = new Map<string, Set<string>>(); // file name → unacknowledged report ids
  private readonly segmentOf = new Map<string, string>(); // report id → file name
  private maxSeq = 0;

  constructor(
    readonly dir: string,
    private readonly logger?: Logger,
  ) {}

  /** Loads what a previous run left (replay), oldest first. Call once before anything else. */
  async open(): Promise<AttemptReport[]> {
    await mkdir(this.dir, { recursive: true });
    const reports: AttemptReport[] = [];
    for (const name of (await readdir(this.dir)).sort()) {
      if (name.endsWith('.tmp')) {
        await unlink(join(this.dir, name)).catch(() => undefined);
        continue;
      }
      if (!name.endsWith('.jsonl')) continue;
      const ids = new Set<string>();
      const text = await readFile(join(this.dir, name), 'utf8');
      for (const line of text.split('\n')) {
        if (line.trim() === '') continue;
        let parsed: unknown;
        try {
          parsed = JSON.parse(line);
        } catch {
          parsed = undefined;
        }
        if (!isAttemptReport(parsed)) {
          this.logger?.warn(
            { segment: name, line: line.slice(0, 200) },
            'skipping a damaged line in the report spool',
          );
          continue;
        }
        if (this.segmentOf.has(parsed.reportId)) continue;
        ids.add(parsed.reportId);
        this.segmentOf.set(parsed.reportId, name);
        this.maxSeq = Math.max(this.maxSeq, parsed.seq);
        reports.push(parsed);
      }
      if (ids.size === 0) await unlink(join(this.dir, name)).catch(() => undefined);
      else this.segments.set(name, ids);
    }
    return reports.sort((a, b) => a.seq - b.seq);
  }

  /** Highest sequence number ever spooled here (so a restarted worker continues after it). */
  get lastSeq(): number {
    return this.maxSeq;
  }

  /** Number of reports spooled and not yet acknowledged. */
  get size(): number {
    return this.segmentOf.size;
  }

  /** Durably writes `reports` (one segment, one fsync). Resolves once they survive a crash. */
  async append(reports: readonly AttemptReport[]): Promise<void> {
    if (reports.length === 0) return;
    const first = reports[0] as AttemptReport;
    const name = `${String(first.seq).padStart(16, '0')}.jsonl`;
    const tmp = join(this.dir, `${name}.tmp`);
    const handle = await open(tmp, 'w', 0o600);
    try {
      await handle.writeFile(`${reports.map((r) => JSON.stringify(r)).join('\n')}\n`);
      await handle.sync();
    } finally {
      await handle.close();
    }
    await rename(tmp, join(this.dir, name));
    await this.syncDir();
    const ids = new Set<string>();
    for (const r of reports) {
      ids.add(r.reportId);
      this.segmentOf.set(r.reportId, name);
      this.maxSeq = Math.max(this.maxSeq, r.seq);
    }
    this.segments.set(name, ids);
  }

  /**
   * Whether the spool takes writes now: writes, fsyncs and deletes a scratch file (a `.tmp`, which
   * replay discards). Throws the error a segment write would meet.
   */
  async probe(): Promise<void> {
    const tmp = join(this.dir, 'probe.tmp');
    const handle = await open(tmp, 'w', 0o600);
    try {
      await handle.writeFile('probe\n');
      await handle.sync();
    } finally {
      await handle.close();
    }
    await unlink(tmp);
  }

  /** Forgets acknowledged reports; deletes segments that hold nothing unacknowledged any more. */
  async acknowledge(reportIds: Iterable<string>): Promise<void> {
    const emptied = new Set<string>();
    for (const id of reportIds) {
      const name = this.segmentOf.get(id);
      if (name === undefined) continue;
      this.segmentOf.delete(id);
      const ids = this.segments.get(name);
      ids?.delete(id);
      if (ids && ids.size === 0) emptied.add(name);
    }
    for (const name of emptied) {
      this.segments.delete(name);
      await unlink(join(this.dir, name)).catch((err: NodeJS.ErrnoException) => {
        if (err.code !== 'ENOENT') throw err;
      });
    }
  }

  private async syncDir(): Promise<void> {
    const handle = await open(this.dir, 'r');
    try {
      await handle.sync();
    } finally {
      await handle.close();
    }
  }
}
