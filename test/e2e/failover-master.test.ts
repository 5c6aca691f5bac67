// Master and leader failover: kill -9 of a run-owning master (its runs are re-assigned and complete),
// kill -9 of the leader (a new leader takes over failover duties), and a leader killed between
// the failover transaction and the record write (the next leader's sweep completes it; nothing
// is failed over twice).
import { FailoverRecords, RegistryPaths, ZkSession } from '@sched/registry';
import { eventually } from '@sched/testkit';
import { afterEach, describe, expect, test } from 'vitest';
import { type DaemonHandle, TestCluster } from './cluster.js';

let cluster: TestCluster | undefined;

afterEach(async () => {
  await cluster?.stop();
  cluster = undefined;
});

const twoStep = (name: string, seconds: number) => ({
  name,
  tasks: [
    { name: 'slow', type: 'shell', command: `sleep ${seconds}` },
    { name: 'after', type: 'shell', command: 'echo done', dependsOn: ['slow'] },
  ],
});

async function readRecord(c: TestCluster, role: 'master' | 'worker', key: string) {
  const session = await ZkSession.connect({
    connectString: c.zkChrooted,
    auth: c.zkAuth,
    sessionTimeoutMs: 4_000,
  });
  try {
    return await new FailoverRecords(session, new RegistryPaths('/sched')).read(role, key);
  } finally {
    await session.close();
  }
}

async function leaderKey(c: TestCluster): Promise<string | null> {
  const [row] = await c.query<{ leader_key: string | null }>(`SELECT leader_key FROM cluster_state`);
  return row?.leader_key ?? null;
}

async function allRunsSucceeded(c: TestCluster, count: number, timeoutMs = 60_000) {
  return eventually(
    async () => {
      const runs = await c.query<{ id: number; state: string; owner: string }>(
        `SELECT id, state, owner FROM runs ORDER BY id`,
      );
      if (runs.length !== count || runs.some((r) => r.state !== 'succeeded')) {
        throw new Error(`runs not all succeeded: ${JSON.stringify(runs)}`);
      }
      return runs;
    },
    { timeoutMs, intervalMs: 250 },
  ).catch((err) => {
    throw new Error(`${(err as Error).message}\n${c.output()}`);
  });
}

/** Makes sure `master` owns at least one of the running runs (the claim is a race between masters). */
async function ensureOwns(c: TestCluster, master: DaemonHandle): Promise<number> {
  const owned = await c.query<{ id: number }>(
    `SELECT id FROM runs WHERE owner = $1 AND state IN ('pending', 'running')`,
    [master.key],
  );
  if (owned.length > 0) return owned.length;
  // Hand one run over the way a failover would (compare-and-set on owner), then wake the new owner.
  const moved = await c.query<{ id: number }>(
    `UPDATE runs SET owner = $1 WHERE id = (SELECT min(id) FROM runs WHERE state IN ('pending', 'running')) RETURNING id`,
    [master.key],
  );
  await c.query(`SELECT pg_notify('sched_run_wake', $1)`, [`${master.key} ${moved[0]?.id}`]);
  return 1;
}

describe('master failover', { timeout: 150_000 }, () => {
  test('kill -9 of a run-owning master: its runs are re-assigned to a live master and complete', async () => {
    cluster = await TestCluster.create();
    const leader = await cluster.startMaster();
    const other = await cluster.startMaster();
    await cluster.startWorker({ SCHED_WORKER_CAPACITY: '16' });
    await eventually(async () => {
      if ((await leaderKey(cluster as TestCluster)) !== leader.key)
        throw new Error('leader not recorded yet');
    });
    await cluster.apply(twoStep('owned-runs', 4));
    for (let i = 0; i < 6; i++) await cluster.trigger('owned-runs');
    await eventually(async () => {
      const rows = await (cluster as TestCluster).query(`SELECT 1 FROM runs WHERE state = 'running'`);
      if (rows.length < 6) throw new Error('not all running');
    });
    const owned = await ensureOwns(cluster, other);
    await other.child.kill9();

    const runs = await allRunsSucceeded(cluster, 6);
    expect(runs.every((r) => r.owner === leader.key)).toBe(true);
    // Nothing ran twice: one attempt per task per run (the worker survived).
    const attempts = await cluster.query<{ n: number }>(
      `SELECT count(*)::int AS n FROM task_attempts GROUP BY run_id, task_name HAVING count(*) > 1`,
    );
    expect(attempts).toEqual([]);
    const [failover] = await cluster.query<{ role: string; runs: number; recorded_at: Date | null }>(
      `SELECT role, runs, recorded_at FROM failovers WHERE key = $1`,
      [other.key],
    );
    expect(failover).toMatchObject({ role: 'master', runs: owned });
    expect(failover?.recorded_at).not.toBeNull();
    expect(await readRecord(cluster, 'master', other.key)).toMatchObject({
      role: 'master',
      by: leader.key,
      runs: owned,
    });
  });

  test('kill -9 of the leader: a new leader takes over failover duties and re-assigns its runs', async () => {
    cluster = await TestCluster.create();
    const first = await cluster.startMaster();
    await eventually(async () => {
      if ((await leaderKey(cluster as TestCluster)) !== first.key) throw new Error('leader not recorded yet');
    });
    const second = await cluster.startMaster();
    const third = await cluster.startMaster();
    await cluster.startWorker({ SCHED_WORKER_CAPACITY: '16' });
    await cluster.apply(twoStep('leader-runs', 4));
    for (let i = 0; i < 4; i++) await cluster.trigger('leader-runs');
    await eventually(async () => {
      const rows = await (cluster as TestCluster).query(`SELECT 1 FROM runs WHERE state = 'running'`);
      if (rows.length < 4) throw new Error('not all running');
    });
    const owned = await ensureOwns(cluster, first);
    await first.child.kill9();

    await allRunsSucceeded(cluster, 4);
    const newLeader = await leaderKey(cluster);
    expect([second.key, third.key]).toContain(newLeader);
    expect(await readRecord(cluster, 'master', first.key)).toMatchObject({
      role: 'master',
      by: newLeader,
      runs: owned,
    });
  });

  test('leader killed between the failover transaction and the record write: the next leader completes it', async () => {
    cluster = await TestCluster.create();
    const crashing = await cluster.startMaster({ SCHED_TEST_HOOKS: 'crash-before-failover-record' });
    await eventually(async () => {
      if ((await leaderKey(cluster as TestCluster)) !== crashing.key)
        throw new Error('leader not recorded yet');
    });
    const successor = await cluster.startMaster();
    const victim = await cluster.startWorker();
    await cluster.apply({
      name: 'crash-hook',
      tasks: [{ name: 'slow', type: 'shell', command: 'sleep 20' }],
    });
    await cluster.trigger('crash-hook');
    await eventually(async () => {
      const rows = await (cluster as TestCluster).query(
        `SELECT 1 FROM task_attempts WHERE state = 'running'`,
      );
      if (rows.length < 1) throw new Error('not running');
    });
    const survivor = await cluster.startWorker();
    await victim.child.kill9();

    // The crashing leader fails the worker over, then dies before writing the record.
    const exit = await crashing.child.exited;
    expect(exit.signal).toBe('SIGKILL');
    const [row] = await cluster.query<{ leader_key: string; recorded_at: Date | null; tasks: number }>(
      `SELECT leader_key, recorded_at, tasks FROM failovers WHERE key = $1`,
      [victim.key],
    );
    expect(row).toMatchObject({ leader_key: crashing.key, tasks: 1 });

    // The successor becomes leader, and its sweep writes the record left unwritten.
    await eventually(
      async () => {
        if (!(await readRecord(cluster as TestCluster, 'worker', victim.key)))
          throw new Error('no record yet');
      },
      { timeoutMs: 30_000, intervalMs: 250 },
    ).catch((err) => {
      throw new Error(`${(err as Error).message}\n${cluster?.output()}`);
    });
    expect(await leaderKey(cluster)).toBe(successor.key);
    expect(await readRecord(cluster, 'worker', victim.key)).toMatchObject({ by: crashing.key, tasks: 1 });

    // The task was failed over exactly once, and its re-run is on the surviving worker.
    const attempts = await eventually(
      async () => {
        const rows = await (cluster as TestCluster).query<{
          attempt: number;
          state: string;
          worker_key: string;
        }>(`SELECT attempt, state, worker_key FROM task_attempts ORDER BY attempt`);
        if (rows.length < 2) throw new Error(`no re-run yet: ${JSON.stringify(rows)}`);
        return rows;
      },
      { timeoutMs: 45_000 },
    );
    expect(attempts.filter((a) => a.state === 'failed-over')).toHaveLength(1);
    expect(attempts[1]).toMatchObject({ attempt: 2, worker_key: survivor.key });
  });
});
