// The task supervisor kills a frozen worker's tasks by its ZooKeeper session lease's deadline
// (docs/design.md#zombies, #failover-delay): the server may expire the session from that moment,
// and the leader re-runs the tasks a failover delay later. Two ways the old supervisor ("a
// requested session timeout of silence after the daemon's last heartbeat") was late:
// - ZooKeeper granted a shorter session timeout than the one asked for (the server's
//   maxSessionTimeout): the supervisor waited the requested timeout;
// - the daemon froze just before its lease ran out, in a partition that had already silenced
//   ZooKeeper: the supervisor waited a whole timeout from the freeze, up to T − D past the re-run.
// Real servers: a private ZooKeeper with a small maxSessionTimeout, and the shared one behind a
// FaultProxy black hole. The freeze is this thread blocked (Atomics.wait), as a long GC or SIGSTOP
// does it to the daemon; the supervisor is its own process and keeps running.
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { createLogger, loadConfig } from '@sched/core';
import { PROTOCOL_HEADER, PROTOCOL_VERSION } from '@sched/protocol';
import {
  eventually,
  FaultProxy,
  registerCleanup,
  sharedZooKeeper,
  startZooKeeper,
  zkChroot,
} from '@sched/testkit';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import type { SupervisorKill } from '../src/executor/task-supervisor.js';
import { WorkerNode } from '../src/worker-node.js';
import { attemptRequest, tempDir } from './helpers.js';

const SECRET = 'supervisor-lease-secret-0123456789abcdef';
let dir: Awaited<ReturnType<typeof tempDir>>;

beforeAll(async () => {
  dir = await tempDir('supervisor-lease');
});
afterAll(async () => {
  await dir.remove();
});

type LogLine = Record<string, unknown> & { level: number; msg: string };

async function startWorker(
  name: string,
  zk: string,
  sessionTimeout: string,
): Promise<{ node: WorkerNode; logs: LogLine[] }> {
  const logs: LogLine[] = [];
  const destination = new Writable({
    write(chunk: Buffer, _encoding, callback) {
      for (const line of chunk.toString('utf8').split('\n')) if (line.trim()) logs.push(JSON.parse(line));
      callback();
    },
  });
  const config = loadConfig({
    env: {
      SCHED_ZK: zk,
      SCHED_ZK_AUTH: 'sched:supervisor-lease-zookeeper-credentials',
      SCHED_ZK_SESSION_TIMEOUT: sessionTimeout,
      SCHED_CLUSTER_SECRET: SECRET,
      SCHED_HOST: '127.0.0.1',
      SCHED_PORT: '0',
      SCHED_DATA_DIR: join(dir.path, name),
      SCHED_KILL_GRACE: '300ms',
      SCHED_HEARTBEAT_INTERVAL: '1s',
    },
  });
  const logger = createLogger({ level: 'info', pretty: false, destination });
  const node = await WorkerNode.start({ config, logger });
  registerCleanup(`worker ${name}`, () => node.stop());
  return { node, logs };
}

/**
 * Dispatches a task that appends the wall-clock time (`date +%s%N`, the clock `Date.now()` reads)
 * to `marks` every 50 ms until it is killed; resolves once it runs.
 */
async function startMarkingTask(node: WorkerNode, marks: string): Promise<string> {
  const req = attemptRequest(
    { type: 'shell', command: `while :; do date +%s%N >> '${marks}'; sleep 0.05; done` },
    { worker: node.key },
  );
  await eventually(async () => {
    const res = await fetch(`http://${node.address}/v1/attempts`, {
      method: 'POST',
      headers: {
        authorization: `Bearer ${SECRET}`,
        'content-type': 'application/json',
        [PROTOCOL_HEADER]: String(PROTOCOL_VERSION),
      },
      body: JSON.stringify(req),
    });
    expect(res.status).toBe(202);
  });
  await eventually(() => expect(existsSync(marks) && readFileSync(marks, 'utf8').length > 0).toBe(true));
  return req.attemptId;
}

/** The last time the task was seen alive, epoch ms. */
function lastMark(marks: string): number {
  const lines = readFileSync(marks, 'utf8').trim().split('\n');
  return Number(BigInt(lines[lines.length - 1] as string) / 1_000_000n);
}

/** Blocks this thread (the worker daemon's event loop with it) for `ms`. */
function freeze(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

/** Where the session lease ends, epoch ms, read as the daemon itself would (`checkLease`). */
function leaseDeadline(node: WorkerNode): { at: number; remainingMs: number } {
  const { remainingMs } = node.session.checkLease({ allowSuspended: true });
  return { at: Date.now() + remainingMs, remainingMs };
}

/** Slack for the supervisor's timer, the kill and the task's 50 ms marking on a busy 2-core machine. */
const KILL_SLACK_MS = 400;

describe('the task supervisor and the session lease', () => {
  test('ZooKeeper grants a shorter session timeout than asked: the lease and the supervisor use the granted one, the operator is told, and a frozen worker’s task dies by the granted deadline', async () => {
    const zk = await startZooKeeper({ tickTime: 200, maxSessionTimeout: 2_000 });
    const { node, logs } = await startWorker('granted', await zkChroot(zk, 'granted'), '6s');

    expect(node.session.requestedSessionTimeoutMs).toBe(6_000);
    expect(node.session.sessionTimeoutMs).toBe(2_000);
    expect(node.supervisor?.timeoutMs).toBe(2_000);
    const warning = logs.find((l) => l.level === 40 && l.msg.includes('ZooKeeper session timeout'));
    expect(warning, JSON.stringify(logs.filter((l) => l.level >= 40))).toMatchObject({
      requestedMs: 6_000,
      grantedMs: 2_000,
    });
    expect(warning?.msg).toContain('requested 6s, but ZooKeeper granted 2s');

    const kills: SupervisorKill[] = [];
    node.supervisor?.onKilled((k) => kills.push(k));
    const marks = join(dir.path, 'granted-marks');
    const attemptId = await startMarkingTask(node, marks);

    const deadline = leaseDeadline(node);
    expect(deadline.remainingMs).toBeLessThanOrEqual(2_000);
    freeze(4_000); // twice the granted timeout, less than the requested one
    expect(lastMark(marks)).toBeLessThanOrEqual(deadline.at + KILL_SLACK_MS);

    await eventually(() => expect(kills.map((k) => k.why)).toEqual(['lease']));
    await eventually(() => expect(node.executor.snapshot(attemptId)?.state).toBe('failed-over'));
  });

  test('a worker cut off from ZooKeeper that freezes just before its lease runs out: the supervisor kills its task at the lease deadline, not a session timeout after the freeze', async () => {
    const zk = await sharedZooKeeper();
    const chrooted = await zkChroot(zk, 'lease-deadline');
    const proxy = await FaultProxy.start({ host: zk.host, port: zk.port });
    const { node } = await startWorker(
      'partitioned',
      `${proxy.address}${chrooted.slice(chrooted.indexOf('/'))}`,
      '4s',
    );
    expect(node.session.sessionTimeoutMs).toBe(4_000);
    const kills: SupervisorKill[] = [];
    node.supervisor?.onKilled((k) => kills.push(k));
    const marks = join(dir.path, 'partitioned-marks');
    const attemptId = await startMarkingTask(node, marks);

    // The partition: nothing the worker sends is answered; its lease runs down from the last answer.
    proxy.setMode('blackhole');
    await eventually(() => expect(node.session.status.kind).toBe('SUSPENDED'), { timeoutMs: 5_000 });
    let deadline = leaseDeadline(node);
    while (deadline.remainingMs > 500) {
      await new Promise((r) => setTimeout(r, 10));
      deadline = leaseDeadline(node);
    }
    // Frozen with under 500 ms of lease left: the daemon cannot fence itself at the deadline.
    freeze(3_500);
    expect(lastMark(marks)).toBeLessThanOrEqual(deadline.at + KILL_SLACK_MS);

    await eventually(() => expect(kills.map((k) => k.why)).toEqual(['lease']));
    // Killed at the deadline, well before a session timeout of the daemon's silence.
    expect(kills[0]?.silentMs ?? Number.POSITIVE_INFINITY).toBeLessThan(4_000 - 1_000);
    proxy.setMode('pass');
    await eventually(() => expect(node.executor.snapshot(attemptId)?.state).toBe('failed-over'));
    // And the worker comes back on a new session.
    await eventually(() => expect(node.state).toBe('running'), { timeoutMs: 15_000 });
  });
});
