import { closeSync, openSync, writeSync } from 'node:fs';

/**
 * The output of one attempt: appended to its file until the size cap, and kept as a tail (the
 * last `tailBytes` of everything the task wrote, including what the cap dropped) for the result.
 * Writes are synchronous appends: ordering between stdout, stderr and sched's own notes stays
 * exact, and a follower woken by `onGrow` always finds the bytes already in the file.
 */
export class AttemptLog {
  private fd: number | undefined;
  private written = 0;
  private total = 0;
  private capped = false;
  private tailChunks: Buffer[] = [];
  private tailSize = 0;
  private readonly listeners = new Set<() => void>();
  private changeCount = 0;

  constructor(
    readonly attemptId: string,
    readonly path: string,
    private readonly maxBytes: number,
    private readonly tailBytes: number,
  ) {
    this.fd = openSync(path, 'a', 0o640);
  }

  /** Appends task output. */
  write(chunk: Buffer): void {
    this.total += chunk.length;
    this.keepTail(chunk);
    if (this.fd === undefined || this.capped) return;
    const room = this.maxBytes - this.written;
    if (chunk.length <= room) {
      this.append(chunk);
    } else {
      if (room > 0) this.append(chunk.subarray(0, room));
      this.capped = true;
      this.append(
        Buffer.from(
          `\n[sched] log capped at ${this.maxBytes} bytes; further output is dropped from this file\n`,
        ),
      );
    }
    this.notify();
  }

  /** A line from sched itself (start, timeout, kill, exit), marked so users can tell it from task output. */
  note(line: string): void {
    const text = Buffer.from(`[sched] ${line}\n`);
    this.keepTail(text);
    if (this.fd !== undefined) this.append(text);
    this.notify();
  }

  /** Last `tailBytes` of output, as text. */
  tail(): string {
    return Buffer.concat(this.tailChunks).subarray(-this.tailBytes).toString('utf8');
  }

  /** Bytes the task produced (the file holds at most `maxBytes` of them). */
  get totalBytes(): number {
    return this.total;
  }

  get truncated(): boolean {
    return this.capped;
  }

  get closed(): boolean {
    return this.fd === undefined;
  }

  close(): void {
    if (this.fd === undefined) return;
    closeSync(this.fd);
    this.fd = undefined;
    this.notify();
  }

  /** Called after each write and on close; returns an unsubscribe function. */
  onGrow(listener: () => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  private append(buf: Buffer): void {
    writeSync(this.fd as number, buf);
    this.written += buf.length;
  }

  private keepTail(chunk: Buffer): void {
    this.tailChunks.push(chunk);
    this.tailSize += chunk.length;
    // Compact once the kept chunks exceed twice the tail: amortised O(1) per byte.
    if (this.tailSize > this.tailBytes * 2) {
      const joined = Buffer.concat(this.tailChunks).subarray(-this.tailBytes);
      this.tailChunks = [Buffer.from(joined)];
      this.tailSize = joined.length;
    }
  }

  /** Increases on every write, note and close: lets a reader tell whether anything happened while it read. */
  get changes(): number {
    return this.changeCount;
  }

  private notify(): void {
    this.changeCount++;
    for (const l of this.listeners) l();
  }
}
