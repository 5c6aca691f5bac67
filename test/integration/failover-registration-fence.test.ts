import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { createLogger } from '@sched/core';
import {
  clusterIdPath,
  ensureLayout,
  FailoverRecords,
  LeaderElection,
  MemberRegistration,
  MembersView,
  RegistryPaths,
  type WorkerHeartbeat,
  ZkSession,
} from '@sched/registry';
import { applyDefinitions, compileDefinitions } from '@sched/store';
import { EventQueue, eventually, registerCleanup, sharedZooKeeper, timing, zkChroot } from '@sched/testkit';
import { LogStore, TaskExecutor, WorkerHttpServer } from '@sched/worker';
import type pg from 'pg';
import { beforeAll, describe, expect, it } from 'vitest';
import { HttpWorkerClient, type WorkerClient } from '../../packages/master/src/dispatch/worker-client.js';
import { FailoverCoordinator } from '../../packages/master/src/failover/failover-coordinator.js';
import { failOverWorkerAttempts } from '../../packages/master/src/failover/failover-queries.js';
import { claimLeaderEpoch } from '../../packages/master/src/failover/leader-epoch.js';
import { WorkerRouter } from '../../packages/master/src/routing/worker-router.js';
import { insertAttempts } from '../../packages/master/src/runs/run-drive-queries.js';
import { type RegisteredWorker, RunDriver } from '../../packages/master/src/runs/run-driver.js';
import { newManualRun, workerView } from '../../packages/master/test/driver-fixtures.js';
import { migratedDatabase, quietLogger } from '../../packages/master/test/scheduler-fixtures.js';

/**
 * The leader's failover fences on the worker's registration (docs/failover.md, the paragraph
 * after the leader's step 4). The leader checks ZooKeeper for a re-registration,
 * then runs its transaction; the two are not atomic. These tests put a re-registration and a
 * dispatch to it exactly in between (the check is wrapped so the worker comes back right after
 * ZooKeeper answered "no node"), with a real ZooKeeper, PostgreSQL, election and coordinator:
 * the transaction must take over the old registration's attempts and leave the new one's, and
 * when the new registration goes too its attempt is taken over, once.
 */

const DELAY_MS = 300;
const SWEEP_MS = 250;
const paths = new RegistryPaths('/sched');
const LEADER = '127.0.0.1:7400_1700000000000';
let pool: pg.Pool;
let zkConnect: string;
let workflowId: number;

beforeAll(async () => {
  const db = await migratedDatabase();
  pool = db.pool;
  registerCleanup('drop database', db.drop);
  zkConnect = (await sharedZooKeeper()).connectString;
  await applyDefinitions(
    pool,
    compileDefinitions([{ value: { name: 'fence', tasks: [{ name: 'only', type: 'noop' }] } }]),
  );
  const { rows } = await pool.query<{ id: number }>(`SELECT id FROM workflows WHERE name = 'fence'`);
  workflowId = rows[0]?.id as number;
});

async function openSession(connect: string): Promise<ZkSession> {
  const session = await ZkSession.connect({
    connectString: connect,
    sessionTimeoutMs: timing.session(),
    connectTimeoutMs: timing.forWaiting(),
  });
  registerCleanup('close ZkSession', () => session.close());
  return session;
}

/** A heartbeat for `key` (the worker fields are ignored in a master's). */
function heartbeat(key: string): () => WorkerHeartbeat {
  const [address = '', startTime = '0'] = key.split('_');
  return () => ({
    address,
    startTime: Number(startTime),
    pid: process.pid,
    version: 'test',
    cpu: 0,
    memory: 0,
    load: 0,
    state: 'NORMAL',
    reportedAt: new Date().toISOString(),
    groups: ['default'],
    weight: 1,
    capacity: 4,
    running: 0,
  });
}

/** One registration of a worker incarnation: its own session, so closing it ends the registration. */
async function registerWorker(connect: string, key: string): Promise<{ session: ZkSession; czxid: bigint }> {
  const session = await openSession(connect);
  const reg = new MemberRegistration(session, paths, {
    role: 'worker',
    nodeKey: key,
    heartbeat: heartbeat(key),
  });
  registerCleanup('stop registration', () => reg.stop());
  const { czxid } = await reg.start();
  return { session, czxid };
}

interface Leader {
  session: ZkSession;
  records: FailoverRecords;
  /** What onFailover reported (fresh failovers). */
  failovers: EventQueue<{ key: string; tasks: number }>;
  /** The leader's view of the workers (what its coordinator hears removals from). */
  workers: MembersView;
  /** Every log line of the coordinator, parsed. */
  logs: { msg: string; time: string; node?: string; tasks?: number; czxid?: string }[];
  /** Runs `fn` once, right after ZooKeeper answered the re-registration check for `key`. */
  afterCheck(key: string, fn: () => Promise<void>): { fired: () => number };
  /** Ends the term and leaves (the database is shared with the next test: no stray sweeps). */
  stop(): Promise<void>;
}

/** A leader (election + coordinator) on its own session, registered as the only master. */
async function startLeader(connect: string, delayMs = DELAY_MS): Promise<Leader> {
  const session = await openSession(connect);
  await ensureLayout(session, paths);
  const records = new FailoverRecords(session, paths);
  const workers = new MembersView(session, paths, 'worker');
  const masters = new MembersView(session, paths, 'master');
  await Promise.all([workers.start(), masters.start()]);
  await new MemberRegistration(session, paths, {
    role: 'master',
    nodeKey: LEADER,
    heartbeat: heartbeat(LEADER),
  }).start();

  const logs: Leader['logs'] = [];
  const logger = createLogger({
    level: 'info',
    pretty: false,
    destination: new Writable({
      write(chunk, _enc, done) {
        for (const line of String(chunk).split('\n')) if (line) logs.push(JSON.parse(line));
        done();
      },
    }),
  });
  const failovers = new EventQueue<{ key: string; tasks: number }>();
  const coordinator = new FailoverCoordinator({
    pool,
    session,
    paths,
    records,
    masters,
    workers,
    nodeKey: LEADER,
    delayMs,
    retentionMs: 86_400_000,
    sweepIntervalMs: SWEEP_MS,
    logger,
    onFailover: (_role, key, counts) => failovers.push({ key, tasks: counts.tasks }),
  });
  let running!: () => void;
  const started = new Promise<void>((resolve) => {
    running = resolve;
  });
  const election = new LeaderElection(session, paths, {
    nodeKey: LEADER,
    onLeadership: async (term) => {
      // Each test's tree (chroot) is its own ZooKeeper as far as the shared database can tell
      // (its own /sched/cluster-id): its leader takes the epoch over, without the T + D wait.
      await claimLeaderEpoch({
        pool,
        term,
        nodeKey: LEADER,
        takeoverWaitMs: 0,
        clusterIdPath: clusterIdPath(paths),
        logger,
      });
      running(); // coordinator.run attaches its listeners synchronously, before this resumes anyone
      await coordinator.run(term);
    },
  });
  const stop = async () => {
    await election.close();
    workers.stop();
    masters.stop();
  };
  registerCleanup('close election', stop);
  election.start();
  await started;

  const realExists = session.exists.bind(session);
  const hooks = new Map<string, { fn: () => Promise<void>; fired: number }>();
  session.exists = async (path, watcher, opts) => {
    const stat = await realExists(path, watcher, opts);
    for (const [key, hook] of hooks) {
      if (path === paths.member('worker', key) && hook.fired === 0) {
        hook.fired++;
        await hook.fn();
      }
    }
    return stat;
  };
  return {
    session,
    records,
    workers,
    failovers,
    logs,
    afterCheck(key, fn) {
      const hook = { fn, fired: 0 };
      hooks.set(key, hook);
      return { fired: () => hook.fired };
    },
    stop,
  };
}

const newRun = (owner = LEADER): Promise<number> => newManualRun(pool, workflowId, owner);

/** What a master persists when it dispatches to `key` as registered with `czxid` (the driver's statement). */
async function dispatch(runId: number, key: string, czxid: bigint | null, shard = 0): Promise<number> {
  const [address = '', startTime = '0'] = key.split('_');
  const [row] = await insertAttempts(pool, LEADER, [
    {
      runId,
      taskName: 'only',
      attempt: 1,
      shardIndex: shard,
      shardTotal: 4,
      worker: { address, startTime: Number(startTime), key, czxid },
    },
  ]);
  return row?.id as number;
}

async function attempt(id: number): Promise<{ state: string; ended: string | null; czxid: string | null }> {
  const { rows } = await pool.query(
    `SELECT state, ended_at::text AS ended, worker_czxid::text AS czxid FROM task_attempts WHERE id = $1`,
    [id],
  );
  return rows[0];
}

const tookOver = (leader: Leader, key: string) =>
  leader.logs.filter((l) => l.node === key && l.msg.startsWith('took over work left on worker'));

describe('the worker failover fences on the registration czxid', () => {
  it('an attempt dispatched to a registration made after the check is left to it, then taken over once when it goes', async () => {
    const connect = await zkChroot({ connectString: zkConnect }, 'fence-removal');
    const key = '127.0.0.1:7401_1700000000001';
    const first = await registerWorker(connect, key);
    const leader = await startLeader(connect);
    try {
      const runId = await newRun();
      const old = await dispatch(runId, key, first.czxid, 0);
      const legacy = await dispatch(runId, key, null, 1); // a row that records no registration

      // The race: ZooKeeper says "no node", then the worker (same key, new session) registers
      // again and a master dispatches to the new registration, then the transaction runs.
      let second: { session: ZkSession; czxid: bigint } | undefined;
      let fresh = 0;
      const window = leader.afterCheck(key, async () => {
        second = await registerWorker(connect, key);
        fresh = await dispatch(runId, key, second.czxid, 2);
      });
      await first.session.close(); // its session ends: the znode goes, the leader's timer starts

      expect(await leader.failovers.next()).toEqual({ key, tasks: 2 });
      expect(window.fired()).toBe(1);
      expect(second?.czxid).toBeGreaterThan(first.czxid);
      expect((await attempt(old)).state).toBe('failed-over');
      expect((await attempt(legacy)).state).toBe('failed-over');
      expect(await attempt(fresh)).toMatchObject({ state: 'dispatched', czxid: String(second?.czxid) });
      expect((await leader.records.read('worker', key))?.tasks).toBe(2);
      expect(
        leader.logs.some(
          (l) => l.node === key && l.tasks === 1 && l.msg.includes('registered again before its failover'),
        ),
      ).toBe(true);
      const endedOld = (await attempt(old)).ended;

      // The zombie finds its record and exits: its new registration goes, and after the delay
      // the attempt left to it is taken over — by the removal, exactly once.
      await second?.session.close();
      await eventually(async () => expect((await attempt(fresh)).state).toBe('failed-over'));
      expect(tookOver(leader, key).map((l) => l.tasks)).toEqual([1]);
      await timing.sleep(DELAY_MS + 3 * SWEEP_MS);
      expect(tookOver(leader, key).map((l) => l.tasks)).toEqual([1]);
      expect((await attempt(old)).ended).toBe(endedOld);
      const { rows } = await pool.query(`SELECT key, tasks FROM failovers WHERE key = $1`, [key]);
      expect(rows).toEqual([{ key, tasks: 2 }]);
      await leader.failovers.expectQuiet(timing.forSleeping());
    } finally {
      await leader.stop();
    }
  });

  it('without a removal event (the sweep finds the key), the bound is the newest registration its attempts recorded before the check', async () => {
    const connect = await zkChroot({ connectString: zkConnect }, 'fence-sweep');
    const key = '127.0.0.1:7402_1700000000002';
    const first = await registerWorker(connect, key);
    const runId = await newRun();
    const old = await dispatch(runId, key, first.czxid, 0);
    await first.session.close(); // gone before any leader watched it: only the sweep finds it

    const leader = await startLeader(connect);
    try {
      let second: { session: ZkSession; czxid: bigint } | undefined;
      let fresh = 0;
      leader.afterCheck(key, async () => {
        second = await registerWorker(connect, key);
        fresh = await dispatch(runId, key, second.czxid, 1);
      });

      expect(await leader.failovers.next()).toEqual({ key, tasks: 1 });
      expect((await attempt(old)).state).toBe('failed-over');
      expect((await attempt(fresh)).state).toBe('dispatched');

      await second?.session.close();
      await eventually(async () => expect((await attempt(fresh)).state).toBe('failed-over'));
      await timing.sleep(DELAY_MS + 3 * SWEEP_MS);
      expect(tookOver(leader, key).map((l) => l.tasks)).toEqual([1]);
    } finally {
      await leader.stop();
    }
  });
});

describe('the failover delay counts from the removal of the newest registration', () => {
  it('a registration made and removed within the delay of an earlier one is failed over only the full delay after its own removal', async () => {
    const delayMs = 2_000;
    const connect = await zkChroot({ connectString: zkConnect }, 'fence-restart');
    const key = '127.0.0.1:7406_1700000000009';
    const first = await registerWorker(connect, key);
    const leader = await startLeader(connect, delayMs);
    try {
      await eventually(() => expect(leader.workers.get(key)?.czxid).toBe(first.czxid));
      const leftAt = (czxid: bigint) => {
        const line = leader.logs.find(
          (l) => l.node === key && l.czxid === String(czxid) && l.msg.includes('left the registry'),
        );
        if (!line) throw new Error(`the leader has not seen registration ${czxid} go`);
        return Date.parse(line.time);
      };
      await first.session.close(); // the first registration goes: the leader's timer starts
      const firstGone = await eventually(() => leftAt(first.czxid));

      // Within the delay the incarnation registers again, gets work, and goes again.
      const second = await registerWorker(connect, key);
      const runId = await newRun();
      const fresh = await dispatch(runId, key, second.czxid, 0);
      await eventually(() => expect(leader.workers.get(key)?.czxid).toBe(second.czxid));
      // Half-way through the first registration's delay, so a timer left running would fire
      // well before the second registration's delay is over.
      await timing.sleep(Math.max(0, firstGone + delayMs / 2 - Date.now()));
      const secondClosedAt = Date.now();
      await second.session.close();
      await eventually(() => leftAt(second.czxid));
      // Otherwise the test proves nothing: the first timer would have fired at its due time anyway.
      expect(secondClosedAt - firstGone).toBeGreaterThan(delayMs / 4);
      expect(secondClosedAt - firstGone).toBeLessThan(delayMs - 500);

      expect(await leader.failovers.next(delayMs + timing.forWaiting())).toEqual({ key, tasks: 1 });
      expect((await attempt(fresh)).state).toBe('failed-over');
      const failedOver = leader.logs.find((l) => l.node === key && l.msg.startsWith('failed over worker'));
      expect(failedOver).toBeDefined();
      // The second registration's zombie had the full delay to fence itself.
      expect(Date.parse(failedOver?.time ?? '')).toBeGreaterThanOrEqual(secondClosedAt + delayMs);
      await leader.failovers.expectQuiet(timing.forSleeping());
    } finally {
      await leader.stop();
    }
  });
});

describe('the run driver records the registration it dispatches to', () => {
  // Its own owner: the runs of the failover tests above are not its to drive.
  const DRIVER = '127.0.0.1:7404_1700000000004';
  const key = '127.0.0.1:7403_1700000000003';
  const view = (czxid: bigint): RegisteredWorker => workerView(key, czxid);

  type Sent = { attemptId: string; worker: string | null; registration: string | null };
  function driver(workers: RegisteredWorker[], sent: Sent[], owner = DRIVER): RunDriver {
    const client: WorkerClient = {
      dispatch: async (_address, attempts) => {
        for (const a of attempts)
          sent.push({ attemptId: a.attemptId, worker: a.worker, registration: a.registration });
        return attempts.map((a) => ({ attemptId: a.attemptId, outcome: 'accepted' as const }));
      },
      cancel: async () => false,
      revoke: async () => new Map(),
      close: () => {},
    };
    return new RunDriver({
      db: pool,
      nodeKey: owner,
      router: new WorkerRouter(),
      workers: () => workers,
      client,
      leaseValid: () => true,
      logger: quietLogger,
      sweepIntervalMs: 60_000,
    });
  }

  it('stores the czxid, moves a dispatched attempt to the worker’s new registration before sending it again, and the failover of the old one leaves it', async () => {
    const runId = await newRun(DRIVER);
    const sent1: Sent[] = [];
    const d1 = driver([view(1_000n)], sent1);
    await d1.start();
    d1.wake([runId]);
    await eventually(() => expect(sent1).toHaveLength(1));
    await d1.stop();
    // The dispatch names the registration (the worker refuses it if it is on another one).
    expect(sent1[0]).toMatchObject({ worker: key, registration: '1000' });
    const id = Number(sent1[0]?.attemptId);
    expect(await attempt(id)).toMatchObject({ state: 'dispatched', czxid: '1000' });

    // The worker came back with a new registration; a master driving the run for the first
    // time sends its dispatched attempts again — to the new registration, recorded first.
    const sent2: Sent[] = [];
    const d2 = driver([view(2_000n)], sent2);
    await d2.start();
    d2.wake([runId]);
    await eventually(() =>
      expect(sent2).toEqual([{ attemptId: String(id), worker: key, registration: '2000' }]),
    );
    await d2.stop();
    expect(await attempt(id)).toMatchObject({ state: 'dispatched', czxid: '2000' });

    // The leader's failover of the old registration (czxid 1000) now leaves it alone.
    expect(await failOverWorkerAttempts(pool, key, 1_000n)).toEqual([]);
    expect((await attempt(id)).state).toBe('dispatched');
    expect((await failOverWorkerAttempts(pool, key, 2_000n)).map((a) => a.attemptId)).toEqual([id]);
  });

  it('sends an attempt again for the registration its row records, even when the view does not know the registration', async () => {
    // Its own owner: the run of the test above is still active (its attempt was failed over).
    const owner = '127.0.0.1:7405_1700000000005';
    const runId = await newRun(owner);
    const [row] = await insertAttempts(pool, owner, [
      {
        runId,
        taskName: 'only',
        attempt: 1,
        shardIndex: 0,
        shardTotal: 1,
        worker: { address: '127.0.0.1:7403', startTime: 1_700_000_000_003, key, czxid: 3_000n },
      },
    ]);
    const { czxid: _unknown, ...withoutRegistration } = view(0n);
    const sent: Sent[] = [];
    const d = driver([withoutRegistration], sent, owner);
    await d.start();
    d.wake([runId]);
    await eventually(() =>
      expect(sent).toEqual([{ attemptId: String(row?.id), worker: key, registration: '3000' }]),
    );
    await d.stop();
  });
});

describe('a master whose view of the workers lags cannot start work on the worker’s new registration', () => {
  // A real worker endpoint (executor + HTTP server) on registration 2000 of its incarnation; the
  // driver's view still shows registration 1000 (the worker lost its session and came back, and
  // this master has not seen it yet). The leader fails registration 1000's attempts over: none
  // may run on the worker. Once the view catches up, the attempt runs there, once.
  // One owner per test: a run left active by one is not driven by the next.
  const ownerOf = (n: number) => `127.0.0.1:${7410 + n}_1700000000006`;
  const SECRET = 'registration-fence-secret-0123456789';
  let dir: string;
  let executor: TaskExecutor;
  let server: WorkerHttpServer;
  let client: HttpWorkerClient;
  let worker: RegisteredWorker;
  /** The worker's current registration (what WorkerNode gives its HTTP server). */
  const registration = '2000';

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'sched-registration-fence-'));
    registerCleanup('remove temp dir', () => rm(dir, { recursive: true, force: true }));
    const logs = new LogStore({ dir: join(dir, 'logs') });
    executor = new TaskExecutor({ capacity: 4, killGraceMs: 200, logs, workDir: join(dir, 'work') });
    let workerKey = '';
    server = new WorkerHttpServer({
      executor,
      logs,
      secret: SECRET,
      nodeKey: () => workerKey,
      registration: () => registration,
    });
    const { port } = await server.listen(0);
    registerCleanup('close worker endpoint', () => server.close());
    workerKey = `127.0.0.1:${port}_1700000000007`;
    worker = workerView(workerKey, 1_000n);
    client = new HttpWorkerClient({ secret: SECRET });
    registerCleanup('close worker client', () => client.close());
  });

  /** A driver over the real client, recording what it sent and what the worker answered. */
  function driver(owner: string, view: { current: RegisteredWorker }) {
    const sent: { attemptId: string; registration: string | null; answer: string }[] = [];
    const revoked: string[] = [];
    const recording: WorkerClient = {
      dispatch: async (address, attempts) => {
        const answers = await client.dispatch(address, attempts);
        attempts.forEach((a, i) => {
          const answer = answers[i];
          sent.push({
            attemptId: a.attemptId,
            registration: a.registration,
            answer: answer?.outcome === 'refused' ? answer.code : String(answer?.outcome),
          });
        });
        return answers;
      },
      cancel: (address, attemptId, reason) => client.cancel(address, attemptId, reason),
      revoke: async (address, workerKey, attempts) => {
        revoked.push(...attempts.map((a) => a.attemptId));
        return client.revoke(address, workerKey, attempts);
      },
      close: () => {},
    };
    const d = new RunDriver({
      db: pool,
      nodeKey: owner,
      router: new WorkerRouter(),
      workers: () => [view.current],
      client: recording,
      leaseValid: () => true,
      logger: quietLogger,
      sweepIntervalMs: 60_000,
      noWorkerRetryMs: 50,
      unconfirmedRetryMs: 1_500,
    });
    return { d, sent, revoked };
  }

  it('a new dispatch to the old registration is refused and not run; it runs once the view shows the new one', async () => {
    const owner = ownerOf(1);
    const runId = await newRun(owner);
    const view = { current: worker };
    const { d, sent } = driver(owner, view);
    await d.start();
    try {
      d.wake([runId]);
      // Refused again and again (back to pending, routed again by the same stale view).
      await eventually(() => expect(sent.length).toBeGreaterThanOrEqual(3));
      const id = sent[0]?.attemptId as string;
      expect(sent.every((x) => x.attemptId === id)).toBe(true);
      expect(new Set(sent.map((x) => `${x.registration} ${x.answer}`))).toEqual(
        new Set(['1000 WRONG_REGISTRATION']),
      );
      expect(executor.snapshot(id)).toBeUndefined();
      expect(['pending', 'dispatched']).toContain((await attempt(Number(id))).state);

      view.current = { ...worker, czxid: 2_000n };
      await eventually(() => expect(executor.snapshot(id)?.state).toBe('succeeded'));
      expect(sent.filter((x) => x.answer === 'accepted')).toEqual([
        { attemptId: id, registration: registration, answer: 'accepted' },
      ]);
      expect(await attempt(Number(id))).toMatchObject({ state: 'dispatched', czxid: '2000' });
      // The leader's failover of registration 1000 leaves it to the registration it runs on.
      expect(await failOverWorkerAttempts(pool, worker.key, 1_000n)).toEqual([]);
    } finally {
      await d.stop();
    }
  });

  it('an attempt that may already be on the worker is held, asked about, and only then dispatched again', async () => {
    // An earlier owner persisted the attempt for registration 1000 and died before sending it;
    // this master drives the run for the first time and sends it again, from its stale view.
    const owner = ownerOf(2);
    const runId = await newRun(owner);
    const [row] = await insertAttempts(pool, owner, [
      {
        runId,
        taskName: 'only',
        attempt: 1,
        shardIndex: 0,
        shardTotal: 1,
        worker: { ...worker, czxid: 1_000n },
      },
    ]);
    const id = String(row?.id);
    const view = { current: worker };
    const { d, sent, revoked } = driver(owner, view);
    await d.start();
    try {
      d.wake([runId]);
      await eventually(() => expect(sent.length).toBeGreaterThanOrEqual(1));
      expect(sent[0]).toEqual({ attemptId: id, registration: '1000', answer: 'WRONG_REGISTRATION' });
      // Held, not asked about at once: the leader's failover of registration 1000 may take it
      // first (then it is dropped). Left where it is meanwhile.
      await timing.sleep(200);
      expect(revoked).toEqual([]);
      expect(sent).toHaveLength(1);
      expect(await attempt(Number(id))).toMatchObject({ state: 'dispatched', czxid: '1000' });
      // Then the worker is asked; it does not have it: only then is it dispatched again.
      await eventually(() => expect(sent.length).toBeGreaterThanOrEqual(3));
      expect(revoked).toContain(id);
      expect(sent.every((x) => x.answer === 'WRONG_REGISTRATION')).toBe(true);
      expect(executor.snapshot(id)).toBeUndefined();

      view.current = { ...worker, czxid: 2_000n };
      await eventually(() => expect(executor.snapshot(id)?.state).toBe('succeeded'));
      expect(sent.filter((x) => x.answer === 'accepted')).toEqual([
        { attemptId: id, registration: registration, answer: 'accepted' },
      ]);
      expect(await attempt(Number(id))).toMatchObject({ state: 'dispatched', czxid: '2000' });
    } finally {
      await d.stop();
    }
  });
});
