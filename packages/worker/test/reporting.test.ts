import { randomUUID } from 'node:crypto';
import { mkdirSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { createLogger, type Logger, systemClock } from '@sched/core';
import type { AttemptReport, NewAttemptReport } from '@sched/protocol';
import { eventually } from '@sched/testkit';
import { afterEach, beforeEach, describe, expect, test } from 'vitest';
import { TaskExecutor } from '../src/executor/task-executor.js';
import { LogStore } from '../src/logs/log-store.js';
import { reportExecutorEvents } from '../src/reporting/executor-reports.js';
import { httpReportTransport } from '../src/reporting/http-report-transport.js';
import { ReportSender } from '../src/reporting/report-sender.js';
import { ReportSpool } from '../src/reporting/report-spool.js';
import { registerWorkerMetrics } from '../src/worker-metrics.js';
import { attemptRequest, tempDir } from './helpers.js';

const SECRET = 'report-secret-0123456789abcdef-0123';

/**
 * A real HTTP server standing in for a master's report endpoint. Mode `fail` answers 500,
 * `ack` acknowledges everything, `reject` rejects everything; `stop()` closes it (connection
 * refused) and `start()` brings it back on the same port.
 */
class FakeMaster {
  mode: 'fail' | 'ack' | 'reject' = 'ack';
  /** Every report received, with the mode it met. */
  readonly received: { report: AttemptReport; mode: string; at: number }[] = [];
  readonly requestTimes: number[] = [];
  /** Bytes of each request body. */
  readonly bodySizes: number[] = [];
  private server: Server | undefined;
  port = 0;

  async start(): Promise<void> {
    this.server = createServer((req, res) => {
      let body = '';
      req.on('data', (c) => (body += c));
      req.on('end', () => {
        this.requestTimes.push(performance.now());
        this.bodySizes.push(Buffer.byteLength(body));
        if (req.headers.authorization !== `Bearer ${SECRET}` || req.url !== '/v1/reports') {
          res.writeHead(401).end();
          return;
        }
        const { reports } = JSON.parse(body) as { reports: AttemptReport[] };
        for (const report of reports) this.received.push({ report, mode: this.mode, at: performance.now() });
        if (this.mode === 'fail') {
          res
            .writeHead(500, { 'content-type': 'application/json' })
            .end('{"error":{"code":"DB_DOWN","message":"x"}}');
        } else if (this.mode === 'reject') {
          const rejected = reports.map((r) => ({
            reportId: r.reportId,
            code: 'FENCED',
            message: 'not yours',
          }));
          res
            .writeHead(200, { 'content-type': 'application/json' })
            .end(JSON.stringify({ acked: [], rejected }));
        } else {
          res
            .writeHead(200, { 'content-type': 'application/json' })
            .end(JSON.stringify({ acked: reports.map((r) => r.reportId) }));
        }
      });
    });
    await new Promise<void>((r) => this.server?.listen(this.port, '127.0.0.1', r));
    this.port = (this.server.address() as AddressInfo).port;
  }

  async stop(): Promise<void> {
    const s = this.server;
    if (!s) return;
    this.server = undefined;
    s.closeAllConnections();
    await new Promise<void>((r) => s.close(() => r()));
  }

  get address(): string {
    return `127.0.0.1:${this.port}`;
  }

  ackedIds(): string[] {
    return this.received.filter((r) => r.mode === 'ack').map((r) => r.report.reportId);
  }
}

function report(n: number, kind: 'running' | 'finished' = 'running', attemptId = `a-${n}`): NewAttemptReport {
  return {
    reportId: randomUUID(),
    kind,
    attemptId,
    runId: 'r-1',
    taskName: 't',
    attempt: 1,
    worker: '127.0.0.1:7000_1700000000000',
    at: new Date().toISOString(),
    startedAt: new Date().toISOString(),
    result: null,
  };
}

let dir: Awaited<ReturnType<typeof tempDir>>;
let master: FakeMaster;
const senders: ReportSender[] = [];

function sender(
  opts: {
    masters?: () => string[];
    initialMs?: number;
    jitter?: number;
    maxMs?: number;
    logger?: Logger;
    spoolRetryMs?: number;
  } = {},
) {
  const s = new ReportSender({
    spool: new ReportSpool(join(dir.path, 'spool')),
    send: httpReportTransport({
      masters: opts.masters ?? (() => [master.address]),
      secret: SECRET,
      timeoutMs: 2_000,
    }),
    backoff: { initialMs: opts.initialMs ?? 20, maxMs: opts.maxMs ?? 200, jitter: opts.jitter ?? 0.2 },
    ...(opts.logger ? { logger: opts.logger } : {}),
    ...(opts.spoolRetryMs === undefined ? {} : { spoolRetryMs: opts.spoolRetryMs }),
  });
  senders.push(s);
  return s;
}
const spoolFiles = () => readdirSync(join(dir.path, 'spool'));

beforeEach(async () => {
  dir = await tempDir('reports');
  master = new FakeMaster();
  await master.start();
});
afterEach(async () => {
  for (const s of senders.splice(0)) await s.stop();
  await master.stop();
  await dir.remove();
});

describe('ReportSender with a real HTTP master', () => {
  test('through 500s and a master that is down, every report is delivered and acked exactly once, in order', async () => {
    const s = sender();
    await s.start();
    master.mode = 'fail';
    const submitted: string[] = [];
    const submitSome = async (from: number, count: number) => {
      for (let i = from; i < from + count; i++) {
        const r = report(i);
        submitted.push(r.reportId);
        await s.submit(r);
      }
    };
    await submitSome(0, 40);
    // Durable before any ack: the spool holds them.
    expect(spoolFiles().length).toBeGreaterThan(0);
    await master.stop(); // connection refused now
    await submitSome(40, 30);
    await new Promise((r) => setTimeout(r, 300));
    await master.start();
    master.mode = 'ack';
    await submitSome(70, 30);
    await s.drained(10_000);

    const acked = master.ackedIds();
    expect(new Set(acked)).toEqual(new Set(submitted));
    expect(acked).toHaveLength(submitted.length); // none sent again after its ack
    // Sent in submission order.
    const seqs = master.received.filter((r) => r.mode === 'ack').map((r) => r.report.seq);
    expect(seqs).toEqual([...seqs].sort((a, b) => a - b));
    expect(master.received.some((r) => r.mode === 'fail')).toBe(true);
    expect(spoolFiles()).toEqual([]);
    expect(s.pending).toBe(0);
  });

  test('retries back off exponentially, then deliver once the master recovers', async () => {
    const s = sender({ initialMs: 40, maxMs: 1_000, jitter: 0 });
    master.mode = 'fail';
    await s.start();
    await s.submit(report(1));
    while (master.requestTimes.length < 6) await new Promise((r) => setTimeout(r, 20));
    const t = master.requestTimes.slice(0, 6);
    const gaps = t.slice(1).map((x, i) => x - (t[i] as number));
    const expected = [40, 80, 160, 320, 640];
    gaps.forEach((gap, i) => {
      expect(gap).toBeGreaterThanOrEqual((expected[i] as number) - 5);
      expect(gap).toBeLessThan((expected[i] as number) + 400);
    });
    master.mode = 'ack';
    await s.drained(10_000);
    expect(master.ackedIds()).toHaveLength(1);
  });

  test('on restart the spool is replayed: reports left unacknowledged by a stopped sender are delivered by the next', async () => {
    const first = sender({ masters: () => [] }); // no master reachable at all
    await first.start();
    const ids: string[] = [];
    for (let i = 0; i < 30; i++) {
      const r = report(i, i % 2 === 0 ? 'running' : 'finished');
      ids.push(r.reportId);
      await first.submit(r);
    }
    await first.stop();
    expect(spoolFiles().length).toBeGreaterThan(0);
    expect(master.received).toHaveLength(0);

    const second = sender();
    expect(await second.start()).toEqual({ replayed: 30 });
    const later = report(99);
    await second.submit(later);
    await second.drained(10_000);
    expect(master.ackedIds()).toEqual([...ids, later.reportId]);
    const laterSeq = master.received.find((r) => r.report.reportId === later.reportId)?.report.seq;
    expect(laterSeq).toBe(31);
    expect(spoolFiles()).toEqual([]);
  });

  test('replay ignores a half-written segment and skips damaged lines', async () => {
    const spoolDir = join(dir.path, 'spool');
    const good = { ...report(1), seq: 7 };
    const { mkdirSync } = await import('node:fs');
    mkdirSync(spoolDir, { recursive: true });
    writeFileSync(
      join(spoolDir, '0000000000000007.jsonl'),
      `${JSON.stringify(good)}\n{"truncated":\nnot json\n`,
    );
    writeFileSync(join(spoolDir, '0000000000000008.jsonl.tmp'), JSON.stringify({ ...report(2), seq: 8 }));
    const s = sender();
    expect(await s.start()).toEqual({ replayed: 1 });
    await s.drained(10_000);
    expect(master.ackedIds()).toEqual([good.reportId]);
    expect(spoolFiles()).toEqual([]);
  });

  test('a RUNNING report still unsent when its attempt finished is settled locally; only the result is sent', async () => {
    const s = sender({ masters: () => [] });
    await s.start();
    const running = report(1, 'running', 'fast-1');
    const finished = report(2, 'finished', 'fast-1');
    const other = report(3, 'running', 'slow-1');
    for (const r of [running, finished, other]) await s.submit(r);
    await s.stop();
    const again = sender();
    await again.start();
    await again.drained(10_000);
    expect(master.ackedIds()).toEqual([finished.reportId, other.reportId]);
    expect(spoolFiles()).toEqual([]);
  });

  test('batches stay under the size cap: finished reports with long log tails go in several requests, in order', async () => {
    const s = sender({ masters: () => [] });
    await s.start();
    const tail = 'x'.repeat(200 * 1024);
    const reports = Array.from({ length: 40 }, (_, i) => ({
      ...report(i, 'finished'),
      result: {
        attemptId: `a-${i}`,
        state: 'succeeded' as const,
        exitCode: 0,
        signal: null,
        httpStatus: null,
        startedAt: new Date().toISOString(),
        endedAt: new Date().toISOString(),
        durationMs: 1,
        logTail: tail,
        logBytes: tail.length,
        logTruncated: false,
        error: null,
      },
    }));
    for (const r of reports) await s.submit(r);
    await s.stop();
    const again = sender();
    await again.start();
    await again.drained(20_000);
    expect(master.ackedIds()).toEqual(reports.map((r) => r.reportId));
    // 40 × 200 KiB = 8 MiB: one batch would have been refused by a master's body limit.
    expect(master.bodySizes.length).toBeGreaterThanOrEqual(2);
    for (const size of master.bodySizes) expect(size).toBeLessThanOrEqual(4 * 1024 * 1024);
  });

  test('a report the master rejects (fenced) is dropped, not retried forever', async () => {
    master.mode = 'reject';
    const s = sender();
    await s.start();
    await s.submit(report(1));
    await s.drained(10_000);
    expect(master.received).toHaveLength(1);
    expect(spoolFiles()).toEqual([]);
  });

  test('any live master will do: with the first one down, the second takes the reports', async () => {
    const down = new FakeMaster();
    await down.start();
    const downAddress = down.address;
    await down.stop();
    const s = sender({ masters: () => [downAddress, master.address] });
    await s.start();
    await s.submit(report(1));
    await s.drained(10_000);
    expect(master.ackedIds()).toHaveLength(1);
  });
});

describe('executor → reports', () => {
  test('a task reports RUNNING, then its result with exit code and log tail', async () => {
    const logs = new LogStore({ dir: join(dir.path, 'logs') });
    const executor = new TaskExecutor({
      capacity: 2,
      killGraceMs: 200,
      logs,
      workDir: join(dir.path, 'work'),
    });
    const s = sender();
    await s.start();
    const key = '127.0.0.1:7001_1700000000001';
    reportExecutorEvents(executor, s, () => key, systemClock);
    const gate = join(dir.path, 'gate');
    const req = attemptRequest({
      type: 'shell',
      command: `echo working; while [ ! -e '${gate}' ]; do sleep 0.02; done; exit 2`,
    });
    executor.submit(req);
    // RUNNING arrives while the task runs…
    while (!master.received.some((r) => r.report.kind === 'running'))
      await new Promise((r) => setTimeout(r, 20));
    expect(executor.snapshot(req.attemptId)?.state).toBe('running');
    writeFileSync(gate, '');
    await executor.result(req.attemptId);
    await s.drained(10_000);
    const got = master.received.map((r) => r.report);
    expect(got.map((r) => [r.kind, r.attemptId, r.worker])).toEqual([
      ['running', req.attemptId, key],
      ['finished', req.attemptId, key],
    ]);
    expect(got[1]?.result).toMatchObject({ state: 'failed', exitCode: 2 });
    expect(got[1]?.result?.logTail).toContain('working');
  });
});

/** A logger whose lines (parsed JSON: level, msg, fields) land in `lines`. */
function capturingLogger(): { logger: Logger; lines: Record<string, unknown>[] } {
  const lines: Record<string, unknown>[] = [];
  const destination = new Writable({
    write(chunk: Buffer, _encoding, callback) {
      for (const line of chunk.toString('utf8').split('\n')) if (line.trim()) lines.push(JSON.parse(line));
      callback();
    },
  });
  return { logger: createLogger({ level: 'info', pretty: false, destination }), lines };
}

/**
 * Issue 13, point 7: a report that cannot be spooled (full or read-only disk) must not be lost.
 * The spool is made unwritable with a filesystem condition that root meets too (these tests may
 * run as root, for whom a read-only chmod changes nothing): its directory is replaced by a file,
 * so every segment write fails with ENOTDIR. Before the fix, `submit` rejected and the report was
 * dropped: nothing reached the master.
 */
describe('a spool that cannot be written', () => {
  const spoolDir = () => join(dir.path, 'spool');
  const breakSpool = () => {
    rmSync(spoolDir(), { recursive: true, force: true });
    writeFileSync(spoolDir(), 'not a directory\n');
  };
  const repairSpool = () => {
    rmSync(spoolDir(), { force: true });
    mkdirSync(spoolDir());
  };
  const errorLines = (lines: Record<string, unknown>[]) => lines.filter((l) => (l.level as number) >= 50);

  test('reports are held in memory and delivered anyway; the failure is logged once, with the path and what to do, and exposed', async () => {
    const { logger, lines } = capturingLogger();
    const s = sender({ logger, spoolRetryMs: 30 });
    await s.start();
    breakSpool();
    const submitted: string[] = [];
    const outcomes: { durable: boolean }[] = [];
    for (let i = 0; i < 5; i++) {
      const r = report(i, i % 2 === 0 ? 'running' : 'finished', `spool-${i}`);
      submitted.push(r.reportId);
      outcomes.push(await s.submit(r));
    }
    expect(outcomes).toEqual(Array.from({ length: 5 }, () => ({ durable: false })));
    await s.drained(10_000);
    expect(master.ackedIds()).toEqual(submitted);
    expect(s.spoolHealth).toMatchObject({ state: 'failing', path: spoolDir(), unspooled: 0 });
    expect(s.spoolHealth.error).toContain('ENOTDIR');
    const metrics = registerWorkerMetrics(
      { executor: undefined, session: undefined, sender: s },
      { defaultMetrics: false },
    );
    expect(await metrics.registry.metrics()).toMatch(/^sched_worker_report_spool_failing 1$/m);

    // Five failed writes and several retries since: one error line, naming the path and the remedy.
    await new Promise((r) => setTimeout(r, 200));
    const errors = errorLines(lines);
    expect(errors).toHaveLength(1);
    expect(errors[0]).toMatchObject({ path: spoolDir(), code: 'ENOTDIR' });
    expect(errors[0]?.msg).toContain(spoolDir());
    expect(errors[0]?.msg).toMatch(/held in memory and sent/);
    expect(errors[0]?.msg).toMatch(/make writable/);

    repairSpool();
    await eventually(() => expect(s.spoolHealth).toMatchObject({ state: 'ok', since: null, error: null }));
    expect(lines.some((l) => l.level === 30 && /writable again/.test(String(l.msg)))).toBe(true);
    expect(await metrics.registry.metrics()).toMatch(/^sched_worker_report_spool_failing 0$/m);
    // Healthy again: new reports are durable.
    expect(await s.submit(report(9))).toEqual({ durable: true });
    await s.drained(10_000);
    expect(errorLines(lines)).toHaveLength(1);
  });

  test('reports held in memory are written to the spool once it is writable again, and then survive a restart', async () => {
    const first = sender({ masters: () => [], spoolRetryMs: 30 }); // no master: nothing is acknowledged
    await first.start();
    breakSpool();
    const ids: string[] = [];
    for (let i = 0; i < 3; i++) {
      const r = report(i, 'finished', `held-${i}`);
      ids.push(r.reportId);
      expect(await first.submit(r)).toEqual({ durable: false });
    }
    expect(first.spoolHealth).toMatchObject({ state: 'failing', unspooled: 3 });
    repairSpool();
    await eventually(() => expect(first.spoolHealth).toMatchObject({ state: 'ok', unspooled: 0 }));
    expect(spoolFiles().filter((f) => f.endsWith('.jsonl')).length).toBeGreaterThan(0);
    await first.stop();

    const second = sender();
    expect(await second.start()).toEqual({ replayed: 3 });
    await second.drained(10_000);
    expect(master.ackedIds()).toEqual(ids);
    expect(spoolFiles()).toEqual([]);
  });

  test('a task whose reports cannot be spooled completes, and its RUNNING report and result reach the master', async () => {
    const logs = new LogStore({ dir: join(dir.path, 'logs') });
    const executor = new TaskExecutor({
      capacity: 2,
      killGraceMs: 200,
      logs,
      workDir: join(dir.path, 'work'),
    });
    const s = sender({ spoolRetryMs: 30 });
    await s.start();
    breakSpool();
    const key = '127.0.0.1:7002_1700000000002';
    reportExecutorEvents(executor, s, () => key, systemClock);
    const req = attemptRequest({ type: 'shell', command: 'sleep 0.2; echo unspooled-ok' });
    executor.submit(req);
    // The task's completion never waits for its reports.
    expect(await executor.result(req.attemptId)).toMatchObject({ state: 'succeeded', exitCode: 0 });
    await eventually(() =>
      expect(master.received.map((r) => [r.report.kind, r.report.attemptId])).toEqual([
        ['running', req.attemptId],
        ['finished', req.attemptId],
      ]),
    );
    expect(master.received[1]?.report.result?.logTail).toContain('unspooled-ok');
    expect(s.spoolHealth.state).toBe('failing');
    repairSpool();
  });
});
