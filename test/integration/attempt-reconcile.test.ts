/**
 * Issue 13 point 7, the master's side: an attempt its owner hears nothing of for long, on a worker
 * that is alive and registered, is asked about (docs/design.md#reconciliation, docs/transport.md
 * "Asking a worker about an attempt"). Against a real PostgreSQL and a real worker endpoint over
 * HTTP (TaskExecutor + WorkerHttpServer), with the run driver and the report applier of a master;
 * the worker's reports are lost on the way as a spool that cannot be written and a cut
 * worker→master path lose them (some or all of them are simply never applied):
 * - a `running` attempt whose result never arrived is finished from the worker's answer, only
 *   once the worker's heartbeat is fresh, and the late report changes nothing;
 * - a `dispatched` attempt none of whose reports arrived is marked running, then finished;
 * - a `running` attempt the worker no longer knows is revoked there and failed over, then re-run
 *   (`failover: rerun`) or failed (`failover: fail`) per the task's policy;
 * - an answer gone stale meanwhile (the leader failed the attempt over) changes nothing;
 * - a sweep asks about at most `maxPerSweep` attempts, and each one at most every `silentMs`.
 * Before the fix nothing asked the worker: each of these attempts stayed `running` (or
 * `dispatched`) for ever.
 */
import { writeFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type AttemptReport, finishedReport, runningReport } from '@sched/protocol';
import { applyDefinitions, compileDefinitions } from '@sched/store';
import { eventually, registerCleanup, sleep } from '@sched/testkit';
import { LogStore, TaskExecutor, WorkerHttpServer } from '@sched/worker';
import type pg from 'pg';
import { beforeAll, describe, expect, test } from 'vitest';
import { HttpWorkerClient } from '../../packages/master/src/dispatch/worker-client.js';
import { failOverWorkerAttempts } from '../../packages/master/src/failover/failover-queries.js';
import { httpAttemptSnapshots } from '../../packages/master/src/reports/attempt-snapshot-client.js';
import { ReportApplier } from '../../packages/master/src/reports/report-applier.js';
import { WorkerRouter } from '../../packages/master/src/routing/worker-router.js';
import {
  AttemptReconciler,
  type AttemptReconcilerOptions,
} from '../../packages/master/src/runs/attempt-reconciler.js';
import { RunDriver } from '../../packages/master/src/runs/run-driver.js';
import { newManualRun, workerView } from '../../packages/master/test/driver-fixtures.js';
import { migratedDatabase, quietLogger } from '../../packages/master/test/scheduler-fixtures.js';

const SECRET = 'attempt-reconcile-secret-0123456789';
let dir: string;
let pool: pg.Pool;
let owners = 0;
const workflows = new Map<string, number>();
const gate = (name: string) => join(dir, `${name}.gate`);

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'sched-attempt-reconcile-'));
  registerCleanup('remove temp dir', () => rm(dir, { recursive: true, force: true }));
  const db = await migratedDatabase();
  pool = db.pool;
  registerCleanup('drop database', db.drop);
  const waitFor = (name: string, out: string) =>
    `while [ ! -e '${gate(name)}' ]; do sleep 0.02; done; echo ${out}`;
  await applyDefinitions(
    pool,
    compileDefinitions([
      {
        value: {
          name: 'lost-result',
          tasks: [{ name: 'only', type: 'shell', command: waitFor('lost-result', 'done-on-worker') }],
        },
      },
      {
        value: {
          name: 'no-reports',
          tasks: [{ name: 'only', type: 'shell', command: waitFor('no-reports', 'silent-ok') }],
        },
      },
      {
        value: {
          name: 'forgotten-rerun',
          tasks: [{ name: 'only', type: 'shell', command: 'echo "ran $SCHED_ATTEMPT"' }],
        },
      },
      {
        value: {
          name: 'forgotten-fail',
          tasks: [{ name: 'only', type: 'shell', command: 'echo ran', failover: 'fail' }],
        },
      },
      { value: { name: 'stale', tasks: [{ name: 'only', type: 'shell', command: 'echo stale-answer' }] } },
      {
        value: {
          name: 'many',
          tasks: ['a', 'b', 'c', 'd', 'e'].map((t) => ({
            name: t,
            type: 'shell',
            command: `while [ ! -e '${gate('many')}' ]; do sleep 0.02; done`,
          })),
        },
      },
    ]),
  );
  const { rows } = await pool.query<{ id: number; name: string }>(`SELECT id, name FROM workflows`);
  for (const r of rows) workflows.set(r.name, r.id);
});

const newOwner = () => `127.0.0.1:${7900 + ++owners}_1700000000000`;

type Reporting = 'all' | 'running-only' | 'none';

/**
 * A worker endpoint on a free port whose reports reach the master only as `reporting` says (the
 * rest is lost on the way), applied by `applier` in order, as a spool sends them.
 */
async function startWorker(name: string, opts: { rememberFinished?: number } = {}) {
  const logs = new LogStore({ dir: join(dir, name, 'logs') });
  const executor = new TaskExecutor({
    capacity: 8,
    killGraceMs: 200,
    logs,
    workDir: join(dir, name, 'work'),
    ...(opts.rememberFinished === undefined ? {} : { rememberFinished: opts.rememberFinished }),
  });
  let key: string | null = null;
  const server = new WorkerHttpServer({
    executor,
    logs,
    secret: SECRET,
    nodeKey: () => key,
    registration: () => '1000',
  });
  const { port } = await server.listen(0);
  key = `127.0.0.1:${port}_1700000000000`;
  const workerKey = key;
  registerCleanup(`stop worker ${name}`, async () => {
    await executor.killAll('test over', { immediate: true });
    await server.close();
  });
  const state = {
    reporting: 'all' as Reporting,
    applier: null as ReportApplier | null,
    lateFinished: [] as AttemptReport[],
  };
  let chain = Promise.resolve();
  let seq = 0;
  executor.on((event) => {
    const at = new Date().toISOString();
    const id = `${name}-${++seq}`;
    const report =
      event.type === 'running'
        ? runningReport(id, event.request, workerKey, event.snapshot.startedAt ?? at, at)
        : finishedReport(id, event.request, workerKey, event.result, at);
    const full = { ...report, seq };
    const delivered =
      state.reporting === 'all' || (state.reporting === 'running-only' && report.kind === 'running');
    if (!delivered) {
      if (report.kind === 'finished') state.lateFinished.push(full);
      return;
    }
    chain = chain
      .then(() => state.applier?.apply([full]))
      .then(
        () => undefined,
        () => undefined,
      );
  });
  return { key: workerKey, view: workerView(workerKey, 1_000n, 8), executor, state };
}
type Worker = Awaited<ReturnType<typeof startWorker>>;

/**
 * A master owning its runs: run driver, report applier, and the attempt reconciler asking the
 * worker (timer off unless `start`; `heartbeatAgeMs` is what the registry view would say).
 */
function masterFor(
  worker: Worker,
  opts: Partial<AttemptReconcilerOptions> & { start?: boolean; heartbeatAgeMs?: () => number } = {},
) {
  const owner = newOwner();
  const client = new HttpWorkerClient({ secret: SECRET, timeoutMs: 5_000 });
  const driver = new RunDriver({
    db: pool,
    nodeKey: owner,
    router: new WorkerRouter(),
    workers: () => [worker.view],
    client,
    leaseValid: () => true,
    logger: quietLogger,
    sweepIntervalMs: 300,
    noWorkerRetryMs: 200,
    unconfirmedRetryMs: 200,
    // Far beyond the test: only the reconciler may end a silent attempt here.
    dispatchTimeoutMs: 600_000,
  });
  const applier = new ReportApplier({
    db: pool,
    nodeKey: owner,
    wakeLocal: (ids) => driver.wake(ids),
    logger: quietLogger,
  });
  worker.state.applier = applier;
  const { start, heartbeatAgeMs, ...rest } = opts;
  const reconciler = new AttemptReconciler({
    db: pool,
    nodeKey: owner,
    workers: () => [
      { key: worker.key, address: worker.view.address, heartbeatAgeMs: heartbeatAgeMs?.() ?? 0 },
    ],
    snapshot: httpAttemptSnapshots({ secret: SECRET }),
    revoke: (address, workerKey, attempts) => client.revoke(address, workerKey, attempts),
    apply: (reports) => applier.apply(reports),
    leaseValid: () => true,
    logger: quietLogger,
    silentMs: 400,
    sweepIntervalMs: 200,
    heartbeatFreshMs: 15_000,
    ...rest,
  });
  registerCleanup('stop master', async () => {
    await reconciler.stop();
    await driver.stop();
    client.close();
  });
  return {
    owner,
    driver,
    applier,
    reconciler,
    async startRun(workflow: string): Promise<number> {
      const runId = await newManualRun(pool, workflows.get(workflow) as number, owner);
      await driver.start();
      if (start ?? true) reconciler.start();
      driver.wake([runId]);
      return runId;
    },
  };
}

async function attemptsOf(runId: number) {
  const { rows } = await pool.query<{
    id: number;
    attempt: number;
    state: string;
    exit_code: number | null;
    log_tail: string | null;
    error: string | null;
    dispatch_seq: number;
  }>(
    `SELECT id, attempt, state, exit_code, log_tail, error, dispatch_seq FROM task_attempts WHERE run_id = $1 ORDER BY id`,
    [runId],
  );
  return rows;
}

async function runState(runId: number): Promise<string | undefined> {
  const { rows } = await pool.query<{ state: string }>(`SELECT state FROM runs WHERE id = $1`, [runId]);
  return rows[0]?.state;
}

describe('a master asks a live worker about attempts it hears nothing of', () => {
  test('a running attempt whose result never arrived is finished from the worker’s answer — only while the worker’s heartbeat is fresh; the late report changes nothing', async () => {
    const worker = await startWorker('w-lost-result');
    worker.state.reporting = 'running-only';
    let heartbeatAge = 60_000; // stale: the worker is not asked
    const master = masterFor(worker, { heartbeatAgeMs: () => heartbeatAge });
    const runId = await master.startRun('lost-result');
    await eventually(async () => expect((await attemptsOf(runId))[0]?.state).toBe('running'));
    writeFileSync(gate('lost-result'), '');
    const [row] = await attemptsOf(runId);
    await worker.executor.result(String(row?.id));

    // The result is on the worker, not in PostgreSQL; a stale heartbeat means nobody asks.
    await sleep(1_500);
    expect(await runState(runId)).toBe('running');
    expect((await attemptsOf(runId))[0]?.state).toBe('running');

    heartbeatAge = 0;
    await eventually(async () => expect(await runState(runId)).toBe('succeeded'), { timeoutMs: 10_000 });
    const [done] = await attemptsOf(runId);
    expect(done).toMatchObject({ state: 'succeeded', exit_code: 0 });
    expect(done?.log_tail).toContain('done-on-worker');

    // The worker's own report arrives at last: acknowledged as a duplicate, nothing changes.
    const late = worker.state.lateFinished.find((r) => r.attemptId === String(row?.id)) as AttemptReport;
    expect(await master.applier.apply([late])).toMatchObject({ applied: [], stale: [late.reportId] });
    expect(await attemptsOf(runId)).toEqual([done]);
  });

  test('a dispatched attempt none of whose reports arrived is marked running, then finished', async () => {
    const worker = await startWorker('w-no-reports');
    worker.state.reporting = 'none';
    const master = masterFor(worker);
    const runId = await master.startRun('no-reports');
    await eventually(async () => expect((await attemptsOf(runId))[0]?.state).toBe('running'), {
      timeoutMs: 10_000,
    });
    const [row] = await attemptsOf(runId);
    expect(worker.executor.snapshot(String(row?.id))?.state).toBe('running');
    writeFileSync(gate('no-reports'), '');
    await eventually(async () => expect(await runState(runId)).toBe('succeeded'), { timeoutMs: 10_000 });
    expect((await attemptsOf(runId))[0]).toMatchObject({ state: 'succeeded', exit_code: 0 });
    expect(worker.executor.started).toBe(1);
  });

  test('a running attempt the worker no longer knows is revoked there and failed over, then re-run (failover: rerun)', async () => {
    // The worker remembers one finished attempt: the next one makes it forget the first.
    const worker = await startWorker('w-forgotten', { rememberFinished: 1 });
    worker.state.reporting = 'running-only';
    const master = masterFor(worker, { start: false });
    const runId = await master.startRun('forgotten-rerun');
    await eventually(async () => expect((await attemptsOf(runId))[0]?.state).toBe('running'));
    const [first] = await attemptsOf(runId);
    await worker.executor.result(String(first?.id));
    worker.executor.submit({
      attemptId: 'unrelated-1',
      runId: 'x',
      taskName: 'x',
      attempt: 1,
      fireTime: null,
      shardIndex: 0,
      shardTotal: 1,
      idempotencyKey: 'x',
      params: {},
      timeoutMs: null,
      worker: null,
      registration: null,
      dispatchSeq: 0,
      task: { type: 'noop' },
    });
    await worker.executor.result('unrelated-1');
    expect(worker.executor.snapshot(String(first?.id))).toBeUndefined();

    worker.state.reporting = 'all';
    await sleep(500); // silent for longer than silentMs
    expect(await master.reconciler.sweep()).toMatchObject({ asked: 1, lost: 1 });
    // Revoked there at the row's dispatch seq: a late copy of that dispatch never starts it.
    expect(worker.executor.revoke(String(first?.id), first?.dispatch_seq ?? 0)).toEqual({
      attemptId: String(first?.id),
      state: 'revoked',
    });
    await eventually(async () => expect(await runState(runId)).toBe('succeeded'), { timeoutMs: 10_000 });
    const rows = await attemptsOf(runId);
    expect(rows.map((r) => [r.attempt, r.state])).toEqual([
      [1, 'failed-over'],
      [2, 'succeeded'],
    ]);
    expect(rows[0]?.error).toMatch(/no longer knows this attempt/);
    expect(rows[1]?.log_tail).toContain('ran 2');
  });

  test('a running attempt the worker no longer knows fails its task under failover: fail', async () => {
    const worker = await startWorker('w-forgotten-fail', { rememberFinished: 0 });
    worker.state.reporting = 'running-only';
    const master = masterFor(worker);
    const runId = await master.startRun('forgotten-fail');
    await eventually(async () => expect(await runState(runId)).toBe('failed'), { timeoutMs: 10_000 });
    expect((await attemptsOf(runId)).map((r) => [r.attempt, r.state])).toEqual([[1, 'failed-over']]);
  });

  test('an answer gone stale meanwhile (the leader failed the attempt over) changes nothing', async () => {
    const worker = await startWorker('w-stale');
    worker.state.reporting = 'running-only';
    const base = httpAttemptSnapshots({ secret: SECRET });
    let failedOver = 0;
    const master = masterFor(worker, {
      start: false,
      // Between the worker's answer and its application, the leader's failover statement runs.
      snapshot: async (address, workerKey, attemptId) => {
        const answer = await base(address, workerKey, attemptId);
        failedOver += (await failOverWorkerAttempts(pool, workerKey, 1_000n)).length;
        return answer;
      },
    });
    const runId = await master.startRun('stale');
    await eventually(async () => expect((await attemptsOf(runId))[0]?.state).toBe('running'));
    const [row] = await attemptsOf(runId);
    await worker.executor.result(String(row?.id));
    await sleep(500);
    expect(await master.reconciler.sweep()).toMatchObject({ asked: 1, finished: 0 });
    expect(failedOver).toBe(1);
    const [after] = await attemptsOf(runId);
    expect(after).toMatchObject({ id: row?.id, state: 'failed-over', exit_code: null });
  });

  test('a sweep asks about at most maxPerSweep attempts (round robin), each at most once per silentMs', async () => {
    const worker = await startWorker('w-many');
    worker.state.reporting = 'running-only';
    const asked: string[] = [];
    const base = httpAttemptSnapshots({ secret: SECRET });
    const master = masterFor(worker, {
      start: false,
      maxPerSweep: 2,
      silentMs: 3_000,
      snapshot: (address, workerKey, attemptId) => {
        asked.push(attemptId);
        return base(address, workerKey, attemptId);
      },
    });
    const runId = await master.startRun('many');
    await eventually(async () => {
      const rows = await attemptsOf(runId);
      expect(rows.map((r) => r.state)).toEqual(Array(5).fill('running'));
    });
    const ids = (await attemptsOf(runId)).map((r) => String(r.id));
    await sleep(3_100);
    const sweeps = [];
    for (let i = 0; i < 4; i++) sweeps.push((await master.reconciler.sweep()).asked);
    // 2 + 2 + 1, then every one was asked less than silentMs ago.
    expect(sweeps).toEqual([2, 2, 1, 0]);
    expect(asked).toEqual(ids);
    writeFileSync(gate('many'), '');
  });
});
