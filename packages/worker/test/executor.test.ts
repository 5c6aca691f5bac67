import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { type AttemptRequest, parseAttemptRequest, parseRevokeRequest } from '@sched/protocol';
import { eventually } from '@sched/testkit';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { TaskExecutor } from '../src/executor/task-executor.js';
import type { ProcessGroupWatcher, SupervisorKill } from '../src/executor/task-supervisor.js';
import { LogStore } from '../src/logs/log-store.js';
import { attemptRequest, pidRuns, tempDir } from './helpers.js';

let dir: Awaited<ReturnType<typeof tempDir>>;
let logs: LogStore;
const GRACE = 300;

function executor(
  capacity = 8,
  extra: {
    baseEnv?: Record<string, string>;
    rememberFinished?: number;
    backlog?: number;
    httpCapacity?: number;
  } = {},
) {
  return new TaskExecutor({
    capacity,
    backlog: extra.backlog ?? 0,
    ...(extra.httpCapacity === undefined ? {} : { httpCapacity: extra.httpCapacity }),
    killGraceMs: GRACE,
    logs,
    workDir: join(dir.path, 'work'),
    baseEnv: extra.baseEnv ?? { PATH: process.env.PATH ?? '/usr/bin:/bin' },
    ...(extra.rememberFinished === undefined ? {} : { rememberFinished: extra.rememberFinished }),
  });
}

/** Waits until the task's log contains `re`; returns the match. */
async function logMatch(attemptId: string, re: RegExp, timeoutMs = 10_000): Promise<RegExpMatchArray> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    let text = '';
    try {
      text = readFileSync(logs.pathFor(attemptId), 'utf8');
    } catch {}
    const m = text.match(re);
    if (m) return m;
    if (Date.now() > deadline)
      throw new Error(`log of ${attemptId} never matched ${re}: ${JSON.stringify(text)}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

beforeAll(async () => {
  dir = await tempDir('executor');
  logs = new LogStore({ dir: join(dir.path, 'logs'), tailBytes: 1024, maxBytesPerAttempt: 4096 });
});
afterAll(async () => {
  await dir.remove();
});

describe('shell tasks', () => {
  test('succeed with exit 0; the task sees the SCHED_* environment and its params, never the cluster secret', async () => {
    const ex = executor(4, {
      baseEnv: {
        PATH: process.env.PATH ?? '/usr/bin:/bin',
        SCHED_CLUSTER_SECRET: 'top-secret',
        SCHED_CLUSTER_SECRET_FILE: '/etc/sched/cluster-secret',
        CREDENTIALS_DIRECTORY: '/run/credentials/sched-worker.service',
        KEEP: 'kept',
      },
    });
    const req = attemptRequest(
      {
        type: 'shell',
        command:
          'echo "run=$SCHED_RUN_ID task=$SCHED_TASK_NAME attempt=$SCHED_ATTEMPT fire=$SCHED_FIRE_TIME"; ' +
          'echo "shard=$SCHED_SHARD_INDEX/$SCHED_SHARD_TOTAL key=$SCHED_IDEMPOTENCY_KEY day=$DAY keep=$KEEP"; ' +
          // biome-ignore lint/suspicious/noTemplateCurlyInString: shell parameter expansion, not a template
          'echo "secret=[${SCHED_CLUSTER_SECRET:-}${SCHED_CLUSTER_SECRET_FILE:-}${CREDENTIALS_DIRECTORY:-}]" >&2',
      },
      { attempt: 2, shardIndex: 1, shardTotal: 3, params: { DAY: '2026-01-01' } },
    );
    const events: string[] = [];
    ex.on((e) => events.push(e.type));
    expect(ex.submit(req).accepted).toBe(true);
    const result = await ex.result(req.attemptId);
    expect(result).toMatchObject({ state: 'succeeded', exitCode: 0, signal: null, error: null });
    expect(result?.logTail).toContain(
      `run=${req.runId} task=extract attempt=2 fire=2026-01-02T03:04:05.000Z`,
    );
    expect(result?.logTail).toContain(`shard=1/3 key=${req.idempotencyKey} day=2026-01-01 keep=kept`);
    expect(result?.logTail).toContain('secret=[]');
    expect(readFileSync(logs.pathFor(req.attemptId), 'utf8')).toContain('day=2026-01-01');
    expect(events).toEqual(['running', 'finished']);
    expect(ex.running).toBe(0);
  });

  test('a non-zero exit is failed with its exit code', async () => {
    const ex = executor();
    const req = attemptRequest({ type: 'shell', command: 'echo oops >&2; exit 3' });
    ex.submit(req);
    const result = await ex.result(req.attemptId);
    expect(result).toMatchObject({ state: 'failed', exitCode: 3, signal: null });
    expect(result?.logTail).toContain('oops');
  });
});

describe('process groups: timeout and cancel kill the whole tree', () => {
  const spawnsGrandchild = 'sleep 300 & echo "grandchild=$!"; echo "leader=$$"; wait';

  test('timeout: SIGTERM reaches the leader and its grandchild sleep; no process is left', async () => {
    const ex = executor();
    const req = attemptRequest({ type: 'shell', command: spawnsGrandchild }, { timeoutMs: 700 });
    ex.submit(req);
    const grandchild = Number((await logMatch(req.attemptId, /grandchild=(\d+)/))[1]);
    const leader = Number((await logMatch(req.attemptId, /leader=(\d+)/))[1]);
    expect(pidRuns(grandchild)).toBe(true);
    expect(pidRuns(leader)).toBe(true);
    const result = await ex.result(req.attemptId);
    expect(result).toMatchObject({ state: 'timed-out', exitCode: null, signal: 'SIGTERM' });
    expect(result?.error).toMatch(/timed out after 700ms/);
    expect(pidRuns(grandchild)).toBe(false);
    expect(pidRuns(leader)).toBe(false);
    expect(ex.running).toBe(0);
  });

  test('timeout: a tree that ignores SIGTERM is SIGKILLed after the grace', async () => {
    const ex = executor();
    const req = attemptRequest(
      { type: 'shell', command: `trap '' TERM; ${spawnsGrandchild}` },
      { timeoutMs: 500 },
    );
    const t0 = performance.now();
    ex.submit(req);
    const grandchild = Number((await logMatch(req.attemptId, /grandchild=(\d+)/))[1]);
    const result = await ex.result(req.attemptId);
    const elapsed = performance.now() - t0;
    expect(result).toMatchObject({ state: 'timed-out', signal: 'SIGKILL' });
    expect(elapsed).toBeGreaterThanOrEqual(500 + GRACE - 20);
    expect(pidRuns(grandchild)).toBe(false);
  });

  test('cancel kills the group; the attempt ends killed', async () => {
    const ex = executor();
    const req = attemptRequest({ type: 'shell', command: spawnsGrandchild });
    ex.submit(req);
    const grandchild = Number((await logMatch(req.attemptId, /grandchild=(\d+)/))[1]);
    const leader = Number((await logMatch(req.attemptId, /leader=(\d+)/))[1]);
    expect(ex.snapshot(req.attemptId)?.pgid).toBe(leader);
    expect(ex.cancel(req.attemptId, 'cancelled by the operator')?.state).toBe('running');
    const result = await ex.result(req.attemptId);
    expect(result).toMatchObject({ state: 'killed', error: 'cancelled by the operator' });
    expect(pidRuns(grandchild)).toBe(false);
    expect(pidRuns(leader)).toBe(false);
    expect(readFileSync(logs.pathFor(req.attemptId), 'utf8')).toMatch(
      /cancelled by the operator; stopping the task/,
    );
  });

  test('a leader that exits leaving a background process: the leftover is killed, the attempt keeps its exit code', async () => {
    const ex = executor();
    const req = attemptRequest({
      type: 'shell',
      command: 'sleep 300 >/dev/null 2>&1 & echo "bg=$!"; exit 0',
    });
    ex.submit(req);
    const result = await ex.result(req.attemptId);
    const bg = Number(result?.logTail.match(/bg=(\d+)/)?.[1]);
    expect(bg).toBeGreaterThan(0);
    expect(result).toMatchObject({ state: 'succeeded', exitCode: 0 });
    expect(pidRuns(bg)).toBe(false);
    expect(result?.logTail).toMatch(/left processes running in its process group; they were terminated/);
  });

  test('self-fencing (killAll immediate) SIGKILLs at once, without the grace, even mid-way through a graceful cancel', async () => {
    const ex = new TaskExecutor({
      capacity: 4,
      killGraceMs: 20_000,
      logs,
      workDir: join(dir.path, 'work'),
      baseEnv: { PATH: process.env.PATH ?? '/usr/bin:/bin' },
    });
    const stubborn = `trap '' TERM; ${spawnsGrandchild}`;
    const a = attemptRequest({ type: 'shell', command: stubborn });
    const b = attemptRequest({ type: 'shell', command: stubborn });
    ex.submit(a);
    ex.submit(b);
    const pids = [
      Number((await logMatch(a.attemptId, /grandchild=(\d+)/))[1]),
      Number((await logMatch(b.attemptId, /grandchild=(\d+)/))[1]),
    ];
    ex.cancel(b.attemptId, 'operator cancel'); // graceful: would wait 20 s for the TERM-ignoring tree
    await new Promise((r) => setTimeout(r, 100));
    expect(ex.snapshot(b.attemptId)?.state).toBe('running');
    const t0 = performance.now();
    await ex.killAll('session lost', { immediate: true });
    expect(performance.now() - t0).toBeLessThan(5_000);
    expect(await ex.result(a.attemptId)).toMatchObject({
      state: 'killed',
      signal: 'SIGKILL',
      error: 'session lost',
    });
    expect(await ex.result(b.attemptId)).toMatchObject({
      state: 'killed',
      signal: 'SIGKILL',
      error: 'operator cancel',
    });
    for (const pid of pids) expect(pidRuns(pid)).toBe(false);
    expect(readFileSync(logs.pathFor(a.attemptId), 'utf8')).toMatch(
      /session lost; killing the task \(SIGKILL/,
    );
  });

  test('killAll fenced (session lost, failed over) ends attempts failed-over, not killed: the master re-runs them', async () => {
    const ex = executor();
    const req = attemptRequest({ type: 'shell', command: spawnsGrandchild });
    ex.submit(req);
    const pid = Number((await logMatch(req.attemptId, /grandchild=(\d+)/))[1]);
    await ex.killAll('worker lost its ZooKeeper session', { fenced: true });
    expect(await ex.result(req.attemptId)).toMatchObject({
      state: 'failed-over',
      signal: 'SIGKILL',
      error: 'worker lost its ZooKeeper session',
    });
    expect(pidRuns(pid)).toBe(false);
  });

  test('killAll handBack (a drain out of time, a stop) ends attempts failed-over after SIGTERM and the grace, not at once', async () => {
    const ex = executor();
    // Exits on its own when asked (SIGTERM): the grace was used, not an immediate SIGKILL.
    const polite = attemptRequest({
      type: 'shell',
      command: `trap 'echo got-term; exit 7' TERM; echo ready; while :; do sleep 0.05; done`,
    });
    // Ignores SIGTERM: SIGKILLed once the grace is over.
    const stubborn = attemptRequest({ type: 'shell', command: `trap '' TERM; ${spawnsGrandchild}` });
    ex.submit(polite);
    ex.submit(stubborn);
    await logMatch(polite.attemptId, /ready/);
    const pid = Number((await logMatch(stubborn.attemptId, /grandchild=(\d+)/))[1]);
    const reason = 'worker drain took longer than 100 ms; handed back';
    const t0 = performance.now();
    await ex.killAll(reason, { handBack: true });
    expect(performance.now() - t0).toBeGreaterThanOrEqual(GRACE - 50);
    expect(await ex.result(polite.attemptId)).toMatchObject({
      state: 'failed-over',
      exitCode: 7,
      signal: null,
      error: reason,
    });
    expect((await ex.result(polite.attemptId))?.logTail).toContain('got-term');
    expect(await ex.result(stubborn.attemptId)).toMatchObject({
      state: 'failed-over',
      signal: 'SIGKILL',
      error: reason,
    });
    expect(pidRuns(pid)).toBe(false);
    expect(readFileSync(logs.pathFor(polite.attemptId), 'utf8')).toMatch(
      /handed back; stopping the task \(SIGTERM to its process group, SIGKILL after/,
    );
    expect(() => ex.submit(attemptRequest({ type: 'noop' }))).toThrow(/draining/);
  });

  test('killAll (self-fencing) kills every running attempt and refuses new ones', async () => {
    const ex = executor();
    const reqs = [1, 2, 3].map(() => attemptRequest({ type: 'shell', command: spawnsGrandchild }));
    for (const r of reqs) ex.submit(r);
    const pids = await Promise.all(
      reqs.map(async (r) => Number((await logMatch(r.attemptId, /grandchild=(\d+)/))[1])),
    );
    await ex.killAll('session lost');
    for (const r of reqs) expect((await ex.result(r.attemptId))?.state).toBe('killed');
    for (const pid of pids) expect(pidRuns(pid)).toBe(false);
    expect(() => ex.submit(attemptRequest({ type: 'noop' }))).toThrow(/draining/);
  });
});

describe('a task SIGKILLed by the task supervisor (the daemon was frozen) is handed back, not failed', () => {
  /** Stands in for the task supervisor: a test says when "it" killed a group. */
  class FakeSupervisor implements ProcessGroupWatcher {
    readonly groups = new Set<number>();
    private readonly kills = new Map<number, SupervisorKill>();
    private readonly listeners = new Set<(kill: SupervisorKill) => void>();
    added(pgid: number): void {
      this.groups.add(pgid);
      this.kills.delete(pgid);
    }
    removed(pgid: number): void {
      this.groups.delete(pgid);
      this.kills.delete(pgid);
    }
    killOf(pgid: number): SupervisorKill | undefined {
      return this.kills.get(pgid);
    }
    onKilled(listener: (kill: SupervisorKill) => void): () => void {
      this.listeners.add(listener);
      return () => this.listeners.delete(listener);
    }
    /** The supervisor's word: it killed `pgid` after `silentMs` of silence. */
    report(pgid: number, silentMs: number): void {
      const kill = { pgid, silentMs };
      this.kills.set(pgid, kill);
      for (const l of this.listeners) l(kill);
    }
  }

  function supervised(supervisor: FakeSupervisor, supervisorWordMs?: number) {
    return new TaskExecutor({
      capacity: 4,
      killGraceMs: GRACE,
      logs,
      workDir: join(dir.path, 'work'),
      baseEnv: { PATH: process.env.PATH ?? '/usr/bin:/bin' },
      groupWatcher: supervisor,
      ...(supervisorWordMs === undefined ? {} : { supervisorWordMs }),
    });
  }

  async function startLong(ex: TaskExecutor): Promise<{ req: AttemptRequest; pgid: number; gc: number }> {
    const req = attemptRequest({ type: 'shell', command: 'sleep 300 & echo "gc=$!"; wait' });
    ex.submit(req);
    const gc = Number((await logMatch(req.attemptId, /gc=(\d+)/))[1]);
    const pgid = ex.snapshot(req.attemptId)?.pgid;
    if (typeof pgid !== 'number') throw new Error('no process group');
    return { req, pgid, gc };
  }

  const handedBack =
    /^the task supervisor killed it: the worker daemon did not answer it for 3456 ms \(frozen or stalled\); handed back$/;

  test("the supervisor's word before the exit: failed-over, no retry used", async () => {
    const sup = new FakeSupervisor();
    const ex = supervised(sup);
    const { req, pgid, gc } = await startLong(ex);
    expect(sup.groups.has(pgid)).toBe(true);
    sup.report(pgid, 3456);
    process.kill(-pgid, 'SIGKILL');
    const result = await ex.result(req.attemptId);
    expect(result).toMatchObject({ state: 'failed-over', signal: 'SIGKILL' });
    expect(result?.error).toMatch(handedBack);
    expect(result?.logTail).toMatch(/attempt failed-over after/);
    expect(pidRuns(gc)).toBe(false);
    expect(sup.groups.has(pgid)).toBe(false);
  });

  test("the supervisor's word after the exit: the executor waits for it, then failed-over", async () => {
    const sup = new FakeSupervisor();
    const ex = supervised(sup, 5_000);
    const { req, pgid, gc } = await startLong(ex);
    process.kill(-pgid, 'SIGKILL');
    await eventually(() => expect(pidRuns(gc) || pidRuns(pgid)).toBe(false));
    await new Promise((r) => setTimeout(r, 300));
    // The exit is seen, the attempt is not decided yet: it waits for the supervisor's word.
    expect(ex.snapshot(req.attemptId)?.state).toBe('running');
    sup.report(pgid, 3456);
    const result = await ex.result(req.attemptId);
    expect(result).toMatchObject({ state: 'failed-over', signal: 'SIGKILL' });
    expect(result?.error).toMatch(handedBack);
  });

  test('no word from the supervisor: a SIGKILL from elsewhere is still the task failing, after a short wait', async () => {
    const sup = new FakeSupervisor();
    const ex = supervised(sup);
    const { req, pgid } = await startLong(ex);
    const t0 = performance.now();
    process.kill(-pgid, 'SIGKILL');
    const result = await ex.result(req.attemptId);
    expect(performance.now() - t0).toBeGreaterThanOrEqual(240);
    expect(result).toMatchObject({ state: 'failed', signal: 'SIGKILL', error: null });
    // A word about another group changes nothing.
    sup.report(pgid + 100_000, 10);
    expect(ex.snapshot(req.attemptId)?.state).toBe('failed');
  });

  test('a SIGKILL the executor sent itself (cancel) does not wait for the supervisor', async () => {
    const sup = new FakeSupervisor();
    const ex = supervised(sup, 5_000);
    const req = attemptRequest({ type: 'shell', command: `trap '' TERM; sleep 300 & echo "gc=$!"; wait` });
    ex.submit(req);
    await logMatch(req.attemptId, /gc=\d+/);
    const t0 = performance.now();
    ex.cancel(req.attemptId, 'operator cancel');
    expect(await ex.result(req.attemptId)).toMatchObject({
      state: 'killed',
      signal: 'SIGKILL',
      error: 'operator cancel',
    });
    expect(performance.now() - t0).toBeLessThan(GRACE + 2_000);
  });
});

describe('script, http and noop tasks', () => {
  test('script: the interpreter runs the inline source with args', async () => {
    const ex = executor();
    const req = attemptRequest({
      type: 'script',
      interpreter: process.execPath,
      interpreterArgs: [],
      source: "console.log('hello', process.argv[2], 'from', process.env.SCHED_TASK_NAME); process.exit(4);",
      args: ['world'],
    });
    ex.submit(req);
    const result = await ex.result(req.attemptId);
    expect(result).toMatchObject({ state: 'failed', exitCode: 4 });
    expect(result?.logTail).toContain('hello world from extract');
  });

  test('script: a missing interpreter fails with a clear error', async () => {
    const ex = executor();
    const req = attemptRequest({
      type: 'script',
      interpreter: 'no-such-interpreter-xyz',
      interpreterArgs: [],
      source: 'x',
      args: [],
    });
    ex.submit(req);
    const result = await ex.result(req.attemptId);
    expect(result?.state).toBe('failed');
    expect(result?.error).toMatch(/could not start no-such-interpreter-xyz: .*ENOENT/);
  });

  describe('http', () => {
    let server: Server;
    let base: string;
    const seen: { method?: string; body: string; header?: string }[] = [];
    beforeAll(async () => {
      server = createServer((req, res) => {
        let body = '';
        req.on('data', (c) => (body += c));
        req.on('end', () => {
          seen.push({ method: req.method, body, header: req.headers['x-token'] as string | undefined });
          if (req.url === '/slow') return void setTimeout(() => res.end('late'), 5_000);
          res.statusCode = req.url === '/teapot' ? 418 : 200;
          res.end(`answer to ${req.url}`);
        });
      });
      await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
      base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    });
    afterAll(() => {
      server.closeAllConnections();
      server.close();
    });

    const http = (path: string, extra: object = {}) => ({
      type: 'http' as const,
      url: `${base}${path}`,
      method: 'POST',
      headers: { 'x-token': 't1' },
      body: '{"a":1}',
      expectedStatus: [],
      requestTimeoutMs: null,
      ...extra,
    });

    test('a 2xx answer succeeds; method, headers and body are sent; the response is logged', async () => {
      const ex = executor();
      const req = attemptRequest(http('/load'));
      ex.submit(req);
      const result = await ex.result(req.attemptId);
      expect(result).toMatchObject({ state: 'succeeded', httpStatus: 200, exitCode: null });
      expect(result?.logTail).toContain('answer to /load');
      expect(seen.at(-1)).toEqual({ method: 'POST', body: '{"a":1}', header: 't1' });
    });

    test('an unexpected status fails; an expected one succeeds', async () => {
      const ex = executor();
      const bad = attemptRequest(http('/teapot'));
      const good = attemptRequest(http('/teapot', { expectedStatus: [418] }));
      ex.submit(bad);
      ex.submit(good);
      expect(await ex.result(bad.attemptId)).toMatchObject({
        state: 'failed',
        httpStatus: 418,
        error: 'HTTP status 418, expected 2xx',
      });
      expect(await ex.result(good.attemptId)).toMatchObject({ state: 'succeeded', httpStatus: 418 });
    });

    test('the request timeout and the attempt timeout both end a slow request as timed-out', async () => {
      const ex = executor();
      const byRequest = attemptRequest(http('/slow', { requestTimeoutMs: 200 }));
      const byAttempt = attemptRequest(http('/slow'), { timeoutMs: 200 });
      ex.submit(byRequest);
      ex.submit(byAttempt);
      const [r1, r2] = [await ex.result(byRequest.attemptId), await ex.result(byAttempt.attemptId)];
      expect(r1).toMatchObject({ state: 'timed-out', error: 'HTTP request timed out after 200ms' });
      expect(r2).toMatchObject({ state: 'timed-out', error: 'timed out after 200ms' });
      expect(r1?.durationMs).toBeLessThan(3_000);
      expect(r2?.durationMs).toBeLessThan(3_000);
    });
  });

  test('noop succeeds at once without a log file', async () => {
    const ex = executor();
    const req = attemptRequest({ type: 'noop' });
    ex.submit(req);
    expect(await ex.result(req.attemptId)).toMatchObject({ state: 'succeeded', logTail: '', logBytes: 0 });
  });
});

describe('capacity, idempotency, draining', () => {
  test('with every process slot taken and no backlog, a shell task is refused as busy; a noop holds no slot and runs; a freed slot is usable again', async () => {
    const ex = executor(2);
    const a = attemptRequest({ type: 'shell', command: 'sleep 300' });
    const b = attemptRequest({ type: 'shell', command: 'sleep 300' });
    ex.submit(a);
    ex.submit(b);
    const c = attemptRequest({ type: 'shell', command: 'true' });
    expect(() => ex.submit(c)).toThrow(
      expect.objectContaining({ code: 'WORKER_AT_CAPACITY', retriable: true }),
    );
    expect(ex.full('process')).toBe(true);
    const noop = attemptRequest({ type: 'noop' });
    expect(ex.submit(noop).accepted).toBe(true);
    expect(await ex.result(noop.attemptId)).toMatchObject({ state: 'succeeded' });
    expect(ex.running).toBe(2);
    ex.cancel(a.attemptId);
    await ex.result(a.attemptId);
    expect(ex.submit(c).accepted).toBe(true);
    ex.cancel(b.attemptId);
    await ex.whenIdle();
    expect(ex.started).toBe(4);
  });

  test('the slot rule: capacity 1 runs 50 attempts back to back while none of their reports is ever acknowledged', async () => {
    // A report sender that never gets an acknowledgement: the listener only collects reports,
    // as the spool does; nothing in the executor waits for it.
    for (const type of ['noop', 'shell'] as const) {
      const ex = executor(1, { backlog: 100 });
      const unacked: string[] = [];
      ex.on((e) => {
        if (e.type === 'finished') unacked.push(e.result.attemptId);
      });
      const reqs = Array.from({ length: 50 }, () =>
        attemptRequest(type === 'noop' ? { type: 'noop' } : { type: 'shell', command: 'true' }),
      );
      for (const r of reqs) expect(ex.submit(r).accepted).toBe(true);
      const results = await Promise.all(reqs.map((r) => ex.result(r.attemptId)));
      expect(results.map((r) => r?.state)).toEqual(reqs.map(() => 'succeeded'));
      expect(unacked).toHaveLength(50);
      expect(ex.started).toBe(50);
      if (type === 'shell') {
        // One at a time: each started after the previous one had ended.
        const spans = results.map(
          (r) => [Date.parse(r?.startedAt ?? ''), Date.parse(r?.endedAt ?? '')] as const,
        );
        for (let i = 1; i < spans.length; i++) {
          expect(spans[i]?.[0]).toBeGreaterThanOrEqual(spans[i - 1]?.[1] ?? Number.POSITIVE_INFINITY);
        }
      }
    }
  });

  test('the backlog: attempts without a free slot wait (queued, FIFO) and start as slots free; beyond it busy', async () => {
    const ex = executor(1, { backlog: 2 });
    const gate = join(dir.path, 'backlog-gate');
    const first = attemptRequest({ type: 'shell', command: `while [ ! -e '${gate}' ]; do sleep 0.02; done` });
    const q1 = attemptRequest({ type: 'shell', command: 'echo q1' });
    const q2 = attemptRequest({ type: 'shell', command: 'echo q2' });
    const events: string[] = [];
    ex.on((e) => events.push(`${e.type} ${e.request.attemptId}`));
    expect(ex.submit(first).accepted).toBe(true);
    expect(ex.submit(q1)).toMatchObject({ accepted: true, snapshot: { state: 'queued', startedAt: null } });
    expect(ex.submit(q2)).toMatchObject({ accepted: true, snapshot: { state: 'queued' } });
    expect(ex.queued).toBe(2);
    expect(() => ex.submit(attemptRequest({ type: 'shell', command: 'true' }))).toThrow(
      expect.objectContaining({ code: 'WORKER_AT_CAPACITY' }),
    );
    // A duplicate of a queued attempt is answered, not queued twice.
    expect(ex.submit(q1)).toMatchObject({ accepted: false, snapshot: { state: 'queued' } });
    writeFileSync(gate, '');
    const [r1, r2] = await Promise.all([ex.result(q1.attemptId), ex.result(q2.attemptId)]);
    expect(r1?.state).toBe('succeeded');
    expect(r2?.state).toBe('succeeded');
    // FIFO, one at a time: q1 ran after `first`, q2 after q1.
    const order = events.filter((e) => e.startsWith('running')).map((e) => e.split(' ')[1]);
    expect(order).toEqual([first.attemptId, q1.attemptId, q2.attemptId]);
    expect(Date.parse(r2?.startedAt ?? '')).toBeGreaterThanOrEqual(Date.parse(r1?.endedAt ?? ''));
  });

  test('a queued attempt never starts once cancelled, fenced or handed back; a draining executor keeps its queue waiting', async () => {
    const ex = executor(1, { backlog: 10 });
    const blocker = attemptRequest({ type: 'shell', command: 'sleep 300' });
    ex.submit(blocker);
    const cancelled = attemptRequest({ type: 'shell', command: 'echo never' });
    const handed = attemptRequest({ type: 'shell', command: 'echo never' });
    const fenced = attemptRequest({ type: 'shell', command: 'echo never' });
    for (const r of [cancelled, handed, fenced]) ex.submit(r);
    ex.cancel(cancelled.attemptId, 'run cancelled');
    expect(await ex.result(cancelled.attemptId)).toMatchObject({
      state: 'killed',
      durationMs: 0,
      error: expect.stringContaining('never started'),
    });
    ex.drain();
    ex.handBackQueued('worker draining; handed back before it started');
    expect(await ex.result(handed.attemptId)).toMatchObject({ state: 'failed-over' });
    expect(await ex.result(fenced.attemptId)).toMatchObject({ state: 'failed-over' });
    expect(ex.queued).toBe(0);
    // Refill the queue while running, then fence: the queued one ends failed-over without starting.
    ex.resume();
    const late = attemptRequest({ type: 'shell', command: 'echo never' });
    ex.submit(late);
    expect(ex.snapshot(late.attemptId)?.state).toBe('queued');
    await ex.killAll('session lost', { fenced: true });
    expect(await ex.result(late.attemptId)).toMatchObject({ state: 'failed-over' });
    expect(await ex.result(blocker.attemptId)).toMatchObject({ state: 'failed-over' });
    expect(ex.started).toBe(1);
    for (const r of [cancelled, handed, fenced, late]) {
      expect(readFileSync(logs.pathFor(r.attemptId), 'utf8')).not.toContain('never\n');
    }
  });

  test('http tasks hold http slots, not process slots', async () => {
    const server = createServer((_req, res) => setTimeout(() => res.end('ok'), 200));
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    try {
      const port = (server.address() as AddressInfo).port;
      const ex = executor(1, { httpCapacity: 2 });
      const shell = attemptRequest({ type: 'shell', command: 'sleep 300' });
      ex.submit(shell);
      const get = {
        type: 'http' as const,
        url: `http://127.0.0.1:${port}/`,
        method: 'GET',
        headers: {},
        body: null,
        expectedStatus: [],
        requestTimeoutMs: null,
      };
      const h1 = attemptRequest(get);
      const h2 = attemptRequest(get);
      expect(ex.submit(h1).accepted).toBe(true);
      expect(ex.submit(h2).accepted).toBe(true);
      expect(ex.httpRunning).toBe(2);
      expect(() => ex.submit(attemptRequest(get))).toThrow(
        expect.objectContaining({ code: 'WORKER_AT_CAPACITY' }),
      );
      expect(await ex.result(h1.attemptId)).toMatchObject({ state: 'succeeded', httpStatus: 200 });
      ex.cancel(shell.attemptId);
      await ex.whenIdle();
    } finally {
      server.close();
    }
  });

  test('the same attempt id is never run twice, while running or after it finished', async () => {
    const ex = executor(1);
    const req = attemptRequest(
      { type: 'shell', command: 'echo once >> "$MARK"' },
      { params: { MARK: join(dir.path, 'mark') } },
    );
    expect(ex.submit(req).accepted).toBe(true);
    // At capacity 1, a duplicate is answered, not refused.
    expect(ex.submit(req)).toMatchObject({ accepted: false, snapshot: { state: 'running' } });
    await ex.result(req.attemptId);
    expect(ex.submit(req)).toMatchObject({ accepted: false, snapshot: { state: 'succeeded' } });
    expect(readFileSync(join(dir.path, 'mark'), 'utf8')).toBe('once\n');
    expect(ex.started).toBe(1);
  });

  test('a draining executor refuses new attempts', () => {
    const ex = executor();
    ex.drain();
    expect(() => ex.submit(attemptRequest({ type: 'noop' }))).toThrow(
      expect.objectContaining({ code: 'WORKER_DRAINING' }),
    );
  });
});

describe('revoke: a dispatch whose answer was lost never starts late', () => {
  /** A shell task that appends to a file: the file says how often it ran. */
  function marked(name: string, extra: { attemptId?: string; dispatchSeq?: number } = {}) {
    const mark = join(dir.path, name);
    return {
      mark,
      req: attemptRequest(
        { type: 'shell', command: 'echo ran >> "$MARK"' },
        { params: { MARK: mark }, ...extra },
      ),
    };
  }

  test('an unknown attempt is revoked: the same or an earlier dispatch is refused and nothing runs; a later one runs', async () => {
    const ex = executor(2);
    const { mark, req } = marked('revoked-mark', { dispatchSeq: 2 });
    expect(ex.revoke(req.attemptId, 2)).toEqual({ attemptId: req.attemptId, state: 'revoked' });
    for (const seq of [2, 1, 0]) {
      expect(() => ex.submit({ ...req, dispatchSeq: seq })).toThrow(
        expect.objectContaining({
          code: 'ATTEMPT_REVOKED',
          retriable: false,
          message: `attempt ${req.attemptId} (dispatch ${seq}) was revoked on this worker: a master found it was not delivered and gave it to another worker; not started`,
        }),
      );
    }
    expect([ex.started, ex.running, ex.snapshot(req.attemptId), existsSync(mark)]).toEqual([
      0,
      0,
      undefined,
      false,
    ]);
    // The master later gives the attempt to this worker again: a new assignment, a higher seq.
    expect(ex.submit({ ...req, dispatchSeq: 3 })).toMatchObject({ accepted: true });
    expect(await ex.result(req.attemptId)).toMatchObject({ state: 'succeeded' });
    expect(readFileSync(mark, 'utf8')).toBe('ran\n');
    // Now known: a copy of any dispatch is answered, not refused and not re-run.
    expect(ex.submit({ ...req, dispatchSeq: 2 })).toMatchObject({
      accepted: false,
      snapshot: { state: 'succeeded' },
    });
    expect(ex.started).toBe(1);
  });

  test('a revoke never lowers the revoked seq', async () => {
    const ex = executor(2);
    const { mark, req } = marked('lowered-mark');
    ex.revoke(req.attemptId, 5);
    ex.revoke(req.attemptId, 1);
    expect(() => ex.submit({ ...req, dispatchSeq: 5 })).toThrow(
      expect.objectContaining({ code: 'ATTEMPT_REVOKED' }),
    );
    expect(ex.submit({ ...req, dispatchSeq: 6 }).accepted).toBe(true);
    await ex.result(req.attemptId);
    expect(readFileSync(mark, 'utf8')).toBe('ran\n');
  });

  test('a known attempt is not revoked: the revoke answers its state and it runs on', async () => {
    const ex = executor(2);
    const gate = join(dir.path, 'revoke-gate');
    const req = attemptRequest(
      { type: 'shell', command: `while [ ! -e "${gate}" ]; do sleep 0.02; done; echo finished` },
      { dispatchSeq: 4 },
    );
    ex.submit(req);
    expect(ex.revoke(req.attemptId, 4)).toMatchObject({ attemptId: req.attemptId, state: 'running' });
    expect(ex.running).toBe(1);
    writeFileSync(gate, '');
    expect(await ex.result(req.attemptId)).toMatchObject({
      state: 'succeeded',
      logTail: expect.stringContaining('finished'),
    });
    expect(ex.revoke(req.attemptId, 4)).toMatchObject({ state: 'succeeded', result: { exitCode: 0 } });
    // A resent copy of its dispatch is still answered from memory, not refused.
    expect(ex.submit(req)).toMatchObject({ accepted: false, snapshot: { state: 'succeeded' } });
  });

  test('revoked ids are bounded: the oldest is forgotten first', async () => {
    const ex = executor(2, { rememberFinished: 3 });
    const reqs = ['a', 'b', 'c', 'd'].map((n) => marked(`unused-${n}`).req);
    for (const r of reqs) ex.revoke(r.attemptId, 0);
    // Revoking the second again makes it the most recent, so the next one pushes out the third.
    ex.revoke(reqs[1]?.attemptId as string, 0);
    const [a, b, c, d] = reqs as [AttemptRequest, AttemptRequest, AttemptRequest, AttemptRequest];
    const e = marked('unused-e').req;
    ex.revoke(e.attemptId, 0);
    const refused = (r: AttemptRequest) => {
      try {
        ex.submit(r);
        return false;
      } catch (err) {
        if ((err as { code?: string }).code === 'ATTEMPT_REVOKED') return true;
        throw err;
      }
    };
    expect([a, c, b, d, e].map(refused)).toEqual([false, false, true, true, true]);
    // The forgotten ones ran.
    await Promise.all([ex.result(a.attemptId), ex.result(c.attemptId)]);
    expect(ex.started).toBe(2);
  });
});

describe('dispatch request validation', () => {
  test('a valid body is parsed with defaults', () => {
    const req = parseAttemptRequest({
      attemptId: 'a1',
      runId: 'r1',
      taskName: 't',
      attempt: 1,
      task: { type: 'shell', command: 'true' },
    });
    expect(req).toMatchObject({
      shardIndex: 0,
      shardTotal: 1,
      idempotencyKey: 'a1',
      params: {},
      timeoutMs: null,
      registration: null,
      dispatchSeq: 0,
    });
  });

  test('registration: a decimal czxid (canonical, up to 19 digits) or null, named when wrong, also inside a batch', () => {
    const body = { attemptId: 'a1', runId: 'r1', taskName: 't', attempt: 1, task: { type: 'noop' } };
    expect(parseAttemptRequest({ ...body, registration: '340' }).registration).toBe('340');
    expect(parseAttemptRequest({ ...body, registration: '0' }).registration).toBe('0');
    expect(parseAttemptRequest({ ...body, registration: '00340' }).registration).toBe('340');
    expect(parseAttemptRequest({ ...body, registration: '9223372036854775807' }).registration).toBe(
      '9223372036854775807',
    );
    expect(parseAttemptRequest({ ...body, registration: null }).registration).toBeNull();
    expect(parseAttemptRequest(body).registration).toBeNull();
    for (const bad of [340, '', '-1', '+1', '3.4', '1e3', ' 340', '1'.repeat(20), true, {}]) {
      expect(() => parseAttemptRequest({ ...body, registration: bad })).toThrow(
        expect.objectContaining({
          code: 'REQUEST_INVALID',
          issues: [{ path: 'registration', message: expect.any(String) }],
        }),
      );
    }
    expect(() => parseAttemptRequest({ ...body, registration: 'x1' }, 'attempts[2]')).toThrow(
      /attempts\[2\]\.registration: "x1" is not accepted; expected the czxid of the worker’s registration znode in decimal \(1 to 19 digits\), or null/,
    );
    expect(() => parseAttemptRequest({ ...body, registration: 377 }, 'attempts[0]')).toThrow(
      /attempts\[0\]\.registration: expected a string, got 377/,
    );
  });

  test('dispatchSeq: an integer 0..2^31-1, named when wrong, also inside a batch', () => {
    const body = { attemptId: 'a1', runId: 'r1', taskName: 't', attempt: 1, task: { type: 'noop' } };
    expect(parseAttemptRequest({ ...body, dispatchSeq: 7 }).dispatchSeq).toBe(7);
    expect(parseAttemptRequest({ ...body, dispatchSeq: 2 ** 31 - 1 }).dispatchSeq).toBe(2 ** 31 - 1);
    for (const bad of [-1, 1.5, '3', null, 2 ** 31, true]) {
      expect(() => parseAttemptRequest({ ...body, dispatchSeq: bad })).toThrow(
        expect.objectContaining({
          code: 'REQUEST_INVALID',
          issues: [
            {
              path: 'dispatchSeq',
              message: expect.stringMatching(/^expected an integer in 0\.\.2147483647, got /),
            },
          ],
        }),
      );
    }
    expect(() => parseAttemptRequest({ ...body, dispatchSeq: -3 }, 'attempts[4]')).toThrow(
      /attempts\[4\]\.dispatchSeq: expected an integer in 0\.\.2147483647, got -3/,
    );
  });

  test('a revoke body: every bad field is named, nothing is returned', () => {
    expect(
      parseRevokeRequest({ worker: 'w:1_2', attempts: [{ attemptId: '123', dispatchSeq: 2 }] }, 10),
    ).toEqual({ worker: 'w:1_2', attempts: [{ attemptId: '123', dispatchSeq: 2 }] });
    expect(parseRevokeRequest({ attempts: [{ attemptId: 'a', dispatchSeq: 0 }] }, 10).worker).toBeNull();
    const issuesOf = (body: unknown, max = 10) => {
      try {
        parseRevokeRequest(body, max);
      } catch (err) {
        return (err as { issues: { path: string }[] }).issues.map((i) => i.path);
      }
      throw new Error('accepted');
    };
    expect(issuesOf(null)).toEqual(['(body)']);
    expect(issuesOf({ worker: 5, attempts: 'all' })).toEqual(['worker', 'attempts']);
    expect(issuesOf({ attempts: [] })).toEqual(['attempts']);
    expect(
      issuesOf(
        {
          attempts: [
            { attemptId: 'a', dispatchSeq: 0 },
            { attemptId: 'b', dispatchSeq: 0 },
          ],
        },
        1,
      ),
    ).toEqual(['attempts']);
    expect(
      issuesOf({
        attempts: [
          { attemptId: 'a', dispatchSeq: 1 },
          { attemptId: 'b', dispatchSeq: -1 },
          { attemptId: '../x', dispatchSeq: 1 },
          { attemptId: 'c' },
          'd',
        ],
      }),
    ).toEqual(['attempts[1].dispatchSeq', 'attempts[2].attemptId', 'attempts[3].dispatchSeq', 'attempts[4]']);
  });

  test('every bad field is named with what is accepted', () => {
    let error: unknown;
    try {
      parseAttemptRequest({
        attemptId: '../etc/passwd',
        runId: 5,
        attempt: 0,
        shardIndex: 3,
        shardTotal: 2,
        params: { SCHED_RUN_ID: 'x', 'bad-name': 'y' },
        task: { type: 'ftp' },
      });
    } catch (e) {
      error = e;
    }
    expect(error).toMatchObject({ code: 'REQUEST_INVALID' });
    const paths = (error as { issues: { path: string }[] }).issues.map((i) => i.path);
    expect(paths).toEqual([
      'attemptId',
      'runId',
      'taskName',
      'attempt',
      'shardIndex',
      'params.bad-name',
      'params.SCHED_RUN_ID',
      'task.type',
    ]);
    expect((error as Error).message).toMatch(
      /task\.type: "ftp" is not a task type; accepted: shell, script, http, noop/,
    );
  });
});
