// Zombie workers are fenced before their work is re-run, and exit on their record. A worker cut
// off from ZooKeeper and from the masters (every link of it black-holed: its ZooKeeper proxies,
// the proxy the masters dispatch to it through, its own proxies to the masters) or frozen
// (SIGSTOP) past the session timeout is failed over; its task must be dead
// before the re-run starts, and the zombie must exit (code 3) once it learns of its record.
// Variants around the heal: within the failover delay (the leader cancels; the worker stays),
// after the failover transaction but before the record (it re-registers, then exits on the
// record), and a run dispatched to it in that window (taken over once it is gone).
//
// The task appends to a marks file: `start <attempt> <pid> <ns> <run>`, then `hb <attempt> <pid>
// <ns>` every 100 ms, then `end <attempt> <pid> <ns>`. Timestamps are `date +%s%N` on this
// machine, the same clock the test reads, so "attempt 1's last sign of life precedes attempt 2's
// start" is a direct comparison. A killed attempt writes no end line: the heartbeats and the
// pid's disappearance from /proc (polled by the test) bound when it died.
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { FailoverRecords, RegistryPaths, ZkSession } from '@sched/registry';
import { eventually, processExists } from '@sched/testkit';
import { afterEach, describe, expect, test } from 'vitest';
import { type DaemonHandle, TestCluster } from './cluster.js';

const SESSION_TIMEOUT_MS = 4_000;
const FAILOVER_DELAY_MS = 3_000;
const EXIT_FAILED_OVER = 3;

let cluster: TestCluster | undefined;
let pidWatch: PidWatch | undefined;

afterEach(async () => {
  pidWatch?.stop();
  pidWatch = undefined;
  await cluster?.stop();
  cluster = undefined;
});

interface Mark {
  kind: 'start' | 'hb' | 'end';
  attempt: number;
  pid: number;
  ns: bigint;
  run?: string;
}

function readMarks(file: string): Mark[] {
  if (!existsSync(file)) return [];
  const marks: Mark[] = [];
  for (const line of readFileSync(file, 'utf8').split('\n')) {
    const [kind, attempt, pid, ns, run] = line.trim().split(/\s+/);
    if ((kind !== 'start' && kind !== 'hb' && kind !== 'end') || !ns) continue;
    marks.push({ kind, attempt: Number(attempt), pid: Number(pid), ns: BigInt(ns), ...(run ? { run } : {}) });
  }
  return marks;
}

const nsToMs = (ns: bigint) => Number(ns / 1_000_000n);

/**
 * A long first attempt (heartbeats for `firstSeconds`), a short re-run. `$$` is the task's shell,
 * the leader of its process group.
 */
function heartbeatTask(marks: string, firstSeconds: number) {
  const beats = firstSeconds * 10;
  return {
    name: 'zombie-task',
    tasks: [
      {
        name: 'work',
        type: 'shell',
        routing: 'first',
        failover: 'rerun',
        command: [
          `echo "start $SCHED_ATTEMPT $$ $(date +%s%N) $SCHED_RUN_ID" >> ${marks}`,
          `if [ "$SCHED_ATTEMPT" = 1 ]; then n=${beats}; else n=10; fi`,
          'i=0',
          `while [ $i -lt $n ]; do echo "hb $SCHED_ATTEMPT $$ $(date +%s%N)" >> ${marks}; sleep 0.1; i=$((i+1)); done`,
          `echo "end $SCHED_ATTEMPT $$ $(date +%s%N)" >> ${marks}`,
        ].join('\n'),
      },
    ],
  };
}

/** Polls /proc for a pid every 20 ms and remembers the first time (epoch ms) it was gone. */
class PidWatch {
  goneAt: number | undefined;
  private readonly timer: NodeJS.Timeout;
  constructor(readonly pid: number) {
    this.timer = setInterval(() => {
      if (this.goneAt === undefined && !processExists(pid)) this.goneAt = Date.now();
    }, 20);
  }
  stop(): void {
    clearInterval(this.timer);
  }
}

async function waitFor<T>(what: string, fn: () => T | Promise<T>, timeoutMs = 60_000): Promise<T> {
  return eventually(fn, { timeoutMs, intervalMs: 100 }).catch((err) => {
    throw new Error(`${what}: ${(err as Error).message}\n${cluster?.output() ?? ''}`);
  });
}

async function readRecord(c: TestCluster, key: string) {
  const session = await ZkSession.connect({
    connectString: c.zkChrooted,
    auth: c.zkAuth,
    sessionTimeoutMs: 4_000,
  });
  try {
    return await new FailoverRecords(session, new RegistryPaths('/sched')).read('worker', key);
  } finally {
    await session.close();
  }
}

async function memberExists(c: TestCluster, key: string): Promise<boolean> {
  const session = await ZkSession.connect({
    connectString: c.zkChrooted,
    auth: c.zkAuth,
    sessionTimeoutMs: 4_000,
  });
  try {
    return (await session.exists(new RegistryPaths('/sched').member('worker', key))) !== undefined;
  } finally {
    await session.close();
  }
}

async function exitOf(c: TestCluster, d: DaemonHandle, timeoutMs: number) {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      d.child.exited,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`${d.name} did not exit\n${c.output()}`)), timeoutMs);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

interface AttemptRow {
  attempt: number;
  state: string;
  worker_key: string;
  error: string | null;
  started_at: Date | null;
  ended_at: Date | null;
}

const runStates = async (c: TestCluster) =>
  (await c.query<{ state: string }>(`SELECT state FROM runs ORDER BY id`)).map((r) => r.state);

/** The one run ends succeeded (its owner finishes it just after the last attempt's report). */
const runSucceeds = (c: TestCluster) =>
  waitFor('the run did not succeed', async () => {
    const states = await runStates(c);
    if (states.length !== 1 || states[0] !== 'succeeded') throw new Error(JSON.stringify(states));
  });

const attemptRows = (c: TestCluster) =>
  c.query<AttemptRow>(
    `SELECT attempt, state, worker_key, error, started_at, ended_at FROM task_attempts ORDER BY attempt`,
  );

/** Starts the workflow on `victim`, then a survivor worker; returns attempt 1's start mark. */
async function startOnVictim(c: TestCluster, marks: string, firstSeconds: number) {
  await c.apply(heartbeatTask(marks, firstSeconds));
  await c.trigger('zombie-task');
  const first = await waitFor('attempt 1 did not start', () => {
    const m = readMarks(marks).find((x) => x.kind === 'start' && x.attempt === 1);
    if (!m) throw new Error('no start line yet');
    return m;
  });
  // Let it beat a little so "it was running" is visible in the marks.
  await waitFor('attempt 1 does not beat', () => {
    if (readMarks(marks).filter((x) => x.kind === 'hb' && x.attempt === 1).length < 3) throw new Error('few');
  });
  return first;
}

/**
 * The no-overlap check: attempt 2 started after every sign of life of attempt 1 (its last
 * heartbeat, and the moment its pid was seen gone from /proc), and attempt 1 never ended normally.
 */
function expectNoOverlap(marks: string, watch: PidWatch, rows: AttemptRow[]) {
  // The database agrees: attempt 1 ended (killed and reported, or failed over) before attempt 2 began.
  const ended = rows[0]?.ended_at;
  const began = rows[1]?.started_at;
  expect(ended, 'attempt 1 ended').toBeInstanceOf(Date);
  expect(began, 'attempt 2 started').toBeInstanceOf(Date);
  expect((ended as Date).getTime()).toBeLessThanOrEqual((began as Date).getTime());
  const all = readMarks(marks);
  const first = all.filter((m) => m.attempt === 1);
  const secondStart = all.find((m) => m.kind === 'start' && m.attempt === 2);
  expect(secondStart, 'attempt 2 started').toBeDefined();
  const lastOfFirst = first.reduce((a, b) => (b.ns > a.ns ? b : a));
  expect(
    first.some((m) => m.kind === 'end'),
    'attempt 1 was killed, it did not finish',
  ).toBe(false);
  expect(watch.goneAt, 'attempt 1 pid gone').toBeDefined();
  const secondStartMs = nsToMs((secondStart as Mark).ns);
  expect(nsToMs(lastOfFirst.ns)).toBeLessThan(secondStartMs);
  expect(watch.goneAt as number).toBeLessThan(secondStartMs);
  // Nothing of attempt 1 after attempt 2 began (a surviving process would keep beating).
  expect(first.filter((m) => m.ns >= (secondStart as Mark).ns)).toEqual([]);
  return { lastOfFirstMs: nsToMs(lastOfFirst.ns), secondStartMs };
}

/**
 * The victim is reachable only through its proxies: masters dispatch to its inbound proxy (the
 * address it registered) and it reports through its own outbound proxies, so black-holing
 * `linkProxies` cuts it off from the masters as well as from ZooKeeper.
 */
function expectTrafficThroughProxies(victim: DaemonHandle) {
  expect(victim.address).toBe(victim.inboundProxy?.address);
  expect(victim.address).not.toBe(victim.listenAddress);
  expect(
    victim.inboundProxy?.acceptedConnections(),
    'dispatches came through the inbound proxy',
  ).toBeGreaterThan(0);
  const outbound = [...victim.outboundProxies.values()];
  expect(outbound.length).toBeGreaterThan(0);
  expect(
    outbound.reduce((n, p) => n + p.acceptedConnections(), 0),
    'reports went through the outbound proxies',
  ).toBeGreaterThan(0);
  expect(victim.linkProxies).toEqual([...victim.zkProxyList, victim.inboundProxy, ...outbound]);
}

/**
 * The common start of the partition scenarios: a victim worker runs attempt 1 of the heartbeat
 * task (its pid watched), a survivor worker joins, the traffic is shown to go through the
 * victim's proxies, and then every link of the victim is black-holed.
 */
async function blackholeVictimMidTask(c: TestCluster, marks: string) {
  const victim = await c.startWorker();
  const first = await startOnVictim(c, marks, 40);
  const watch = new PidWatch(first.pid);
  pidWatch = watch;
  const survivor = await c.startWorker();
  expectTrafficThroughProxies(victim);
  const blackholedAt = Date.now();
  c.partition(victim, 'blackhole');
  return { victim, survivor, watch, blackholedAt };
}

/** A leader that dies right after its failover transaction (test hook), and its successor. */
async function crashingLeaderAndSuccessor(c: TestCluster, env: Record<string, string> = {}) {
  const crashing = await c.startMaster({ SCHED_TEST_HOOKS: 'crash-before-failover-record', ...env });
  await waitFor('the hooked master did not become leader', async () => {
    const [row] = await c.query<{ leader_key: string | null }>(`SELECT leader_key FROM cluster_state`);
    if (row?.leader_key !== crashing.key) throw new Error(`leader ${row?.leader_key}`);
  });
  const successor = await c.startMaster();
  return { crashing, successor };
}

describe('a worker black-holed from ZooKeeper and the masters past the session timeout', () => {
  test('its task is dead before the re-run starts; on healing it finds its record and exits 3', async () => {
    cluster = await TestCluster.create({ zkProxies: true, peerProxies: true });
    const c = cluster;
    await c.startMaster();
    const marks = join(c.dataRoot, 'marks.log');
    const { victim, survivor, watch, blackholedAt } = await blackholeVictimMidTask(c, marks);

    // The worker notices on its own (local lease), with no word from the server.
    await waitFor('victim did not fence itself', () =>
      victim.child.waitForOutput(/self-fencing: killing every running task/, 100),
    );
    const rows = await waitFor('attempt 2 did not succeed', async () => {
      const r = await attemptRows(c);
      if (r.length < 2 || r[1]?.state !== 'succeeded') throw new Error(JSON.stringify(r));
      return r;
    });
    const t = expectNoOverlap(marks, watch, rows);
    // The worker's own report of the fenced attempt cannot reach a master through the black
    // hole: the leader fails the attempt over, after the session timeout and the delay.
    expect(rows[0]).toMatchObject({ attempt: 1, state: 'failed-over', worker_key: victim.key });
    expect(rows[0]?.error).toMatch(/was lost \(its ZooKeeper session ended\)/);
    expect(rows[1]).toMatchObject({ attempt: 2, state: 'succeeded', worker_key: survivor.key });
    expect(rows).toHaveLength(2);
    const record = await waitFor('no failover record', async () => {
      const r = await readRecord(c, victim.key);
      if (!r) throw new Error('not yet');
      return r;
    });
    expect(record).toMatchObject({ role: 'worker', pid: victim.child.pid, tasks: 1 });
    const failedOverAt = Date.parse(record?.failedOverAt ?? '');
    expect(failedOverAt - blackholedAt).toBeGreaterThanOrEqual(
      SESSION_TIMEOUT_MS + FAILOVER_DELAY_MS - 1_000,
    );
    await runSucceeds(c);
    // Still partitioned: the zombie is alive, knows nothing yet.
    expect(victim.child.running).toBe(true);

    const healedAt = Date.now();
    c.partition(victim, 'pass');
    const exit = await exitOf(c, victim, 30_000);
    expect(exit.code).toBe(EXIT_FAILED_OVER);
    expect(victim.child.output()).toMatch(/was failed over at .* by .*; killing its tasks and exiting/);
    expect(victim.child.output()).toMatch(/exiting \(a supervisor should start a fresh incarnation\)/);
    console.log(
      `black-hole → attempt 1 last sign of life ${t.lastOfFirstMs - blackholedAt} ms, pid gone ${
        (watch.goneAt as number) - blackholedAt
      } ms, record ${failedOverAt - blackholedAt} ms, attempt 2 start ${t.secondStartMs - blackholedAt} ms; heal → exit ${
        Date.now() - healedAt
      } ms`,
    );
  }, 120_000);
});

describe('a worker that heals after its znode is gone but before the leader acts (within the failover delay)', () => {
  test('it re-registers with the same key; the leader cancels; its task was dead before the re-run; it stays', async () => {
    cluster = await TestCluster.create({ zkProxies: true, peerProxies: true });
    const c = cluster;
    const master = await c.startMaster();
    const marks = join(c.dataRoot, 'marks.log');
    const { victim, survivor, watch, blackholedAt } = await blackholeVictimMidTask(c, marks);
    // The server expires the session; the leader sees the znode go and starts waiting.
    const leftRe = new RegExp(`worker ${victim.key} left the registry; failing it over in`);
    await waitFor('the leader did not see the znode go', () => master.child.waitForOutput(leftRe, 100));
    const removedAt = Date.now();
    await sleep(1_000);
    const healedAt = Date.now();
    c.partition(victim, 'pass');

    // Within the delay, the same incarnation is registered again: the leader cancels.
    await waitFor('the leader did not cancel', () =>
      master.child.waitForOutput(new RegExp(`worker ${victim.key} is registered again; no failover`), 100),
    );
    const cancelledAt = Date.now();
    expect(cancelledAt - removedAt).toBeGreaterThanOrEqual(FAILOVER_DELAY_MS - 200);
    expect(victim.child.output()).toMatch(/"generation":2,"msg":"registered"/);
    expect(await memberExists(c, victim.key)).toBe(true);

    // The attempt was handed back by the fenced worker itself (failed-over, killed first), so
    // the run goes on: no overlap, nothing lost.
    const rows = await waitFor('attempt 2 did not succeed', async () => {
      const r = await attemptRows(c);
      if (r.length < 2 || r[1]?.state !== 'succeeded') throw new Error(JSON.stringify(r));
      return r;
    });
    const t = expectNoOverlap(marks, watch, rows);
    expect(rows[0]).toMatchObject({ attempt: 1, state: 'failed-over', worker_key: victim.key });
    expect(rows[0]?.error).toMatch(/worker lost its ZooKeeper session/);
    expect(rows[1]).toMatchObject({ attempt: 2, state: 'succeeded' });
    expect([victim.key, survivor.key]).toContain(rows[1]?.worker_key);
    expect(rows).toHaveLength(2);
    await runSucceeds(c);

    // No failover happened, so there is no record and the worker lives on (it watches the
    // record path: had the leader passed its check just before the re-registration, the record
    // would appear now and the worker would exit 3).
    await sleep(FAILOVER_DELAY_MS + 1_000);
    expect(await readRecord(c, victim.key)).toBeUndefined();
    expect(await c.query(`SELECT key FROM failovers`)).toEqual([]);
    expect(victim.child.running).toBe(true);
    expect(victim.child.output()).not.toMatch(/was failed over/);

    // ... and it is a working worker again: a new run is accepted by it.
    await survivor.child.stop(10_000);
    await c.trigger('zombie-task');
    const later = await waitFor('the healed worker did not run the next run', async () => {
      const r = await c.query<{ state: string; worker_key: string }>(
        `SELECT a.state, a.worker_key FROM task_attempts a JOIN runs r ON r.id = a.run_id
          WHERE r.id = (SELECT max(id) FROM runs) AND (SELECT count(*) FROM runs) = 2 ORDER BY a.attempt`,
      );
      if (r.at(-1)?.state !== 'running' && r.at(-1)?.state !== 'succeeded')
        throw new Error(JSON.stringify(r));
      return r;
    });
    expect(later.at(-1)?.worker_key).toBe(victim.key);
    console.log(
      `black-hole → znode removal seen ${removedAt - blackholedAt} ms, heal ${healedAt - blackholedAt} ms, leader cancels ${
        cancelledAt - blackholedAt
      } ms; attempt 1 last sign of life ${t.lastOfFirstMs - blackholedAt} ms, pid gone ${
        (watch.goneAt as number) - blackholedAt
      } ms, attempt 2 start ${t.secondStartMs - blackholedAt} ms`,
    );
  }, 150_000);
});

describe('a worker that re-registers after the failover transaction but before the record is written', () => {
  // The window between the leader's re-registration check and its record write is milliseconds
  // wide; the leader's test hook widens it: it dies right after the failover transaction, and the
  // next leader's reconciliation sweep writes the record seconds later. The worker heals in
  // between, finds no record, re-registers with the same key, and must exit once the record
  // appears (docs/design.md#zombies: if the record appears later, exit then).
  test('it re-registers, then exits 3 when the record appears; no overlap, nothing failed over twice', async () => {
    cluster = await TestCluster.create({ zkProxies: true, peerProxies: true });
    const c = cluster;
    const { crashing, successor } = await crashingLeaderAndSuccessor(c);
    const marks = join(c.dataRoot, 'marks.log');
    const { victim, survivor, watch, blackholedAt } = await blackholeVictimMidTask(c, marks);
    // The leader commits the failover, then dies before writing the record.
    const crash = await exitOf(c, crashing, 60_000);
    expect(crash.signal).toBe('SIGKILL');
    const crashedAt = Date.now();
    const [row] = await c.query<{ leader_key: string; recorded_at: Date | null }>(
      `SELECT leader_key, recorded_at FROM failovers WHERE key = $1`,
      [victim.key],
    );
    expect(row).toMatchObject({ leader_key: crashing.key, recorded_at: null });
    expect(await readRecord(c, victim.key)).toBeUndefined();

    const healedAt = Date.now();
    c.partition(victim, 'pass');
    await waitFor('the worker did not re-register', () =>
      victim.child.waitForOutput(/"generation":2,"msg":"registered"/, 100),
    );
    const reregisteredAt = Date.now();
    expect(await memberExists(c, victim.key)).toBe(true);
    expect(victim.child.running).toBe(true);

    // The successor's sweep writes the record; the re-registered worker sees it and exits.
    const exit = await exitOf(c, victim, 60_000);
    const exitedAt = Date.now();
    expect(exit.code).toBe(EXIT_FAILED_OVER);
    const out = victim.child.output();
    expect(out.indexOf('"generation":2,"msg":"registered"')).toBeLessThan(out.indexOf('was failed over at'));
    expect(out).toMatch(/was failed over at .* by .*; killing its tasks and exiting/);
    expect(await readRecord(c, victim.key)).toMatchObject({ role: 'worker', by: crashing.key });
    expect(successor.child.output()).toMatch(/completing an interrupted failover: writing its record/);

    const rows = await waitFor('attempt 2 did not succeed', async () => {
      const r = await attemptRows(c);
      if (r.length < 2 || r[1]?.state !== 'succeeded') throw new Error(JSON.stringify(r));
      return r;
    });
    const t = expectNoOverlap(marks, watch, rows);
    expect(rows[0]).toMatchObject({ attempt: 1, state: 'failed-over', worker_key: victim.key });
    expect(rows[1]).toMatchObject({ attempt: 2, state: 'succeeded', worker_key: survivor.key });
    expect(rows).toHaveLength(2);
    await runSucceeds(c);
    console.log(
      `black-hole → attempt 1 pid gone ${(watch.goneAt as number) - blackholedAt} ms, attempt 2 start ${
        t.secondStartMs - blackholedAt
      } ms, leader crash ${crashedAt - blackholedAt} ms, heal ${healedAt - blackholedAt} ms, re-registered ${
        reregisteredAt - blackholedAt
      } ms, exit 3 ${exitedAt - blackholedAt} ms`,
    );
  }, 150_000);
});

describe('work dispatched to a re-registered zombie before its record appears', () => {
  // Same window as above, and a run dispatched into it: the zombie is the only worker, takes the
  // run, then exits on its record. That attempt was not part of the failover transaction (it did
  // not exist yet, and it went to the newer registration); it must still be failed over and re-run,
  // not left `running` on a dead worker. The crashing leader has a longer session (8 s), so its
  // successor — whose sweep writes the record — takes over 8 s after the crash: the window
  // between the zombie's re-registration and its record is several seconds wide.
  test('is taken over after the zombie exits and re-run elsewhere, without overlap', async () => {
    cluster = await TestCluster.create({ zkProxies: true, peerProxies: true });
    const c = cluster;
    const { crashing, successor } = await crashingLeaderAndSuccessor(c, { SCHED_ZK_SESSION_TIMEOUT: '8s' });
    const {
      victim,
      survivor,
      watch: firstWatch,
    } = await blackholeVictimMidTask(c, join(c.dataRoot, 'marks-1.log'));
    expect((await exitOf(c, crashing, 60_000)).signal).toBe('SIGKILL');
    const crashedAt = Date.now();
    // The first run's owner is gone: its re-run waits for the successor to fail that master over.
    // Only the zombie will be left to take the next run.
    await survivor.child.stop(10_000);

    // The zombie heals and re-registers with the same key (no record yet).
    c.partition(victim, 'pass');
    await waitFor('the worker did not re-register', () =>
      victim.child.waitForOutput(/"generation":2,"msg":"registered"/, 100),
    );
    expect(await readRecord(c, victim.key)).toBeUndefined();
    const marks = join(c.dataRoot, 'marks-2.log');
    await c.apply({ ...heartbeatTask(marks, 40), name: 'late-task' });
    await c.trigger('late-task');
    const exit = await exitOf(c, victim, 60_000);
    const exitedAt = Date.now();
    expect(exit.code).toBe(EXIT_FAILED_OVER);
    const late = readMarks(marks).find((m) => m.kind === 'start' && m.attempt === 1);
    expect(late, 'the zombie started the late run before its record appeared').toBeDefined();
    firstWatch.stop();
    const lateWatch = new PidWatch((late as Mark).pid);
    pidWatch = lateWatch;

    const fresh = await c.startWorker();
    const rows = await waitFor('the late run was not re-run', async () => {
      const r = await c.query<AttemptRow>(
        `SELECT a.attempt, a.state, a.worker_key, a.error, a.started_at, a.ended_at
           FROM task_attempts a JOIN runs r ON r.id = a.run_id JOIN workflows w ON w.id = r.workflow_id
          WHERE w.name = 'late-task' ORDER BY a.attempt`,
      );
      if (r.length < 2 || r[1]?.state !== 'succeeded') throw new Error(JSON.stringify(r));
      return r;
    });
    expectNoOverlap(marks, lateWatch, rows);
    expect(rows[0]).toMatchObject({ attempt: 1, state: 'failed-over', worker_key: victim.key });
    expect(rows[1]).toMatchObject({ attempt: 2, state: 'succeeded', worker_key: fresh.key });
    expect(rows).toHaveLength(2);
    // Both runs end succeeded; the first one's attempt 1 was failed over exactly once.
    await waitFor('the runs did not succeed', async () => {
      const states = await runStates(c);
      if (states.join() !== 'succeeded,succeeded') {
        const all = await c.query(
          `SELECT run_id, attempt, state, worker_key, error, dispatch_seq FROM task_attempts ORDER BY id`,
        );
        throw new Error(`${JSON.stringify(states)} ${JSON.stringify(all)}`);
      }
    });
    const firstRows = await c.query<{ attempt: number; state: string }>(
      `SELECT a.attempt, a.state FROM task_attempts a JOIN runs r ON r.id = a.run_id JOIN workflows w
          ON w.id = r.workflow_id WHERE w.name = 'zombie-task' ORDER BY a.attempt`,
    );
    expect(firstRows).toEqual([
      { attempt: 1, state: 'failed-over' },
      { attempt: 2, state: 'succeeded' },
    ]);
    console.log(
      `late attempt: ${rows[0]?.error}; zombie exit 3 ${exitedAt - crashedAt} ms after the leader crash; successor: ${
        /took over work left on worker/.test(successor.child.output()) ? 'took over leftovers' : 'no takeover'
      }`,
    );
  }, 200_000);
});

describe('a worker daemon frozen by SIGSTOP past the session timeout', () => {
  test('the task supervisor kills its task before the re-run; after SIGCONT the daemon exits 3', async () => {
    cluster = await TestCluster.create();
    const c = cluster;
    await c.startMaster();
    const victim = await c.startWorker();
    const marks = join(c.dataRoot, 'marks.log');
    const first = await startOnVictim(c, marks, 40);
    pidWatch = new PidWatch(first.pid);
    const survivor = await c.startWorker();

    const stoppedAt = Date.now();
    victim.child.pause();
    const rows = await waitFor('attempt 2 did not succeed', async () => {
      const r = await attemptRows(c);
      if (r.length < 2 || r[1]?.state !== 'succeeded') throw new Error(JSON.stringify(r));
      return r;
    });
    const t = expectNoOverlap(marks, pidWatch, rows);
    // The daemon was frozen the whole time: only the supervisor can have killed the task, and
    // only the leader can have failed the attempt over (the daemon reported nothing).
    expect(rows[0]).toMatchObject({ attempt: 1, state: 'failed-over', worker_key: victim.key });
    expect(rows[0]?.error).toMatch(/was lost/);
    expect(rows[1]).toMatchObject({ attempt: 2, state: 'succeeded', worker_key: survivor.key });
    expect(rows).toHaveLength(2);
    await runSucceeds(c);
    const record = await waitFor('no failover record', async () => {
      const r = await readRecord(c, victim.key);
      if (!r) throw new Error('not yet');
      return r;
    });
    expect(record).toMatchObject({ role: 'worker', pid: victim.child.pid, tasks: 1 });
    // The supervisor acts at the daemon's session lease deadline (the last answered request's send
    // time + sessionTimeout; the watchdog talks every sessionTimeout/3), so before the leader could.
    const goneAfter = (pidWatch.goneAt as number) - stoppedAt;
    expect(goneAfter).toBeGreaterThanOrEqual((SESSION_TIMEOUT_MS * 2) / 3 - 300);
    expect(goneAfter).toBeLessThan(Date.parse(record?.failedOverAt ?? '') - stoppedAt);
    expect(victim.child.running).toBe(true);

    const resumedAt = Date.now();
    victim.child.resume();
    const exit = await exitOf(c, victim, 30_000);
    expect(exit.code).toBe(EXIT_FAILED_OVER);
    const out = victim.child.output();
    // The resumed daemon's lease ran out while it was frozen: it fences itself before anything else.
    expect(out).toMatch(/self-fencing: killing every running task/);
    expect(out).toMatch(
      /\[sched task supervisor\] the worker daemon's ZooKeeper session lease ran out \d+ ms ago and the daemon has not answered for \d+ ms: SIGKILLed 1 task process group/,
    );
    expect(out).toMatch(/was failed over at .* by .*; killing its tasks and exiting/);
    console.log(
      `SIGSTOP → task pid gone ${goneAfter} ms, record ${Date.parse(record?.failedOverAt ?? '') - stoppedAt} ms, attempt 2 start ${
        t.secondStartMs - stoppedAt
      } ms; SIGCONT → exit ${Date.now() - resumedAt} ms`,
    );
  }, 120_000);
});
