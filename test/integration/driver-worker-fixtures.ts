// Shared by the tests that drive runs with a real RunDriver against a real PostgreSQL and real
// worker endpoints: an in-process worker (TaskExecutor + WorkerHttpServer on a real port) whose
// executor events are applied as reports by the master's own ReportApplier (the worker's spool and
// report transport are not under test here), a WorkerClient that records what it sent, and a pool
// that reaches PostgreSQL through a FaultProxy.
import { join } from 'node:path';
import type { Logger } from '@sched/core';
import { type AttemptRequest, finishedReport, runningReport } from '@sched/protocol';
import { createPool } from '@sched/store';
import { FaultProxy, registerCleanup } from '@sched/testkit';
import { LogStore, TaskExecutor, WorkerHttpServer } from '@sched/worker';
import type pg from 'pg';
import type { DispatchAnswer, WorkerClient } from '../../packages/master/src/dispatch/worker-client.js';
import type { ReportApplier } from '../../packages/master/src/reports/report-applier.js';
import type { RegisteredWorker } from '../../packages/master/src/runs/run-driver.js';
import { workerView } from '../../packages/master/test/driver-fixtures.js';

export interface EndpointWorker {
  key: string;
  address: string;
  /** As the driver sees it (registration czxid 1000, the one the endpoint answers for). */
  view: RegisteredWorker;
  executor: TaskExecutor;
  /** Applies this worker's executor events (running, then the result) through `applier` from now on. */
  reportTo(applier: ReportApplier): void;
}

let reportSeq = 0;

/** A worker endpoint on a free port, in worker groups `groups`; stopped at the end of the file. */
export async function startEndpointWorker(opts: {
  dir: string;
  secret: string;
  groups?: string[];
  capacity?: number;
  backlog?: number;
  logger?: Logger;
}): Promise<EndpointWorker> {
  const logs = new LogStore({ dir: join(opts.dir, 'logs') });
  const executor = new TaskExecutor({
    capacity: opts.capacity ?? 4,
    backlog: opts.backlog ?? 100,
    killGraceMs: 200,
    logs,
    workDir: join(opts.dir, 'work'),
  });
  let key: string | null = null;
  const server = new WorkerHttpServer({
    executor,
    logs,
    secret: opts.secret,
    nodeKey: () => key,
    registration: () => '1000',
  });
  const { port } = await server.listen(0);
  key = `127.0.0.1:${port}_1700000000000`;
  const workerKey = key;
  registerCleanup(`stop worker ${workerKey}`, async () => {
    await executor.killAll('test over', { immediate: true });
    await server.close();
  });
  const view = { ...workerView(workerKey, 1_000n, opts.capacity ?? 4), groups: opts.groups ?? ['default'] };
  return {
    key: workerKey,
    address: view.address,
    view,
    executor,
    reportTo(applier) {
      // One report at a time, in order (running before finished), as the worker's spool sends them.
      let chain = Promise.resolve();
      executor.on((event) => {
        const at = new Date().toISOString();
        const report =
          event.type === 'running'
            ? runningReport(`r-${++reportSeq}`, event.request, workerKey, event.snapshot.startedAt ?? at, at)
            : finishedReport(`r-${++reportSeq}`, event.request, workerKey, event.result, at);
        const seq = ++reportSeq;
        chain = chain
          .then(() => applier.apply([{ ...report, seq }]))
          .then(
            () => undefined,
            (err) => opts.logger?.warn({ err }, 'test report not applied'),
          );
      });
    },
  };
}

/** What a {@link recordingClient} sent: every dispatched attempt with its answer, and every cancel. */
export interface Sent {
  dispatches: { at: number; request: AttemptRequest; answer: DispatchAnswer['outcome'] | 'error' }[];
  cancels: { at: number; attemptId: string; outcome: boolean | 'error' }[];
}

/** Wraps `client`, recording what was sent. */
export function recordingClient(client: WorkerClient): { client: WorkerClient; sent: Sent } {
  const sent: Sent = { dispatches: [], cancels: [] };
  return {
    sent,
    client: {
      dispatch: async (address, attempts) => {
        const at = performance.now();
        try {
          const answers = await client.dispatch(address, attempts);
          for (const [i, request] of attempts.entries())
            sent.dispatches.push({ at, request, answer: answers[i]?.outcome ?? 'error' });
          return answers;
        } catch (err) {
          for (const request of attempts) sent.dispatches.push({ at, request, answer: 'error' });
          throw err;
        }
      },
      cancel: async (address, attemptId, reason) => {
        const at = performance.now();
        try {
          const outcome = await client.cancel(address, attemptId, reason);
          sent.cancels.push({ at, attemptId, outcome });
          return outcome;
        } catch (err) {
          sent.cancels.push({ at, attemptId, outcome: 'error' });
          throw err;
        }
      },
      revoke: (address, workerKey, attempts) => client.revoke(address, workerKey, attempts),
      close: () => client.close(),
    },
  };
}

/** A pool on the database at `url` whose connections go through a FaultProxy (closed at the end of the file). */
export async function proxiedPool(url: string, max = 4): Promise<{ pool: pg.Pool; proxy: FaultProxy }> {
  const u = new URL(url);
  const proxy = await FaultProxy.start({ host: u.hostname, port: Number(u.port) });
  u.host = proxy.address;
  const pool = createPool(u.toString(), { max });
  registerCleanup('end proxied pool', () => pool.end());
  return { pool, proxy };
}
