import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { createLogger, FencedWriteError, loadConfig } from '@sched/core';
import {
  type ClusterMembership,
  FailoverRecords,
  joinCluster,
  type MasterHeartbeat,
  RegistryPaths,
  ZkSession,
} from '@sched/registry';
import { createPool, withTransaction } from '@sched/store';
import {
  createDatabase,
  eventually,
  registerCleanup,
  startZooKeeperEnsemble,
  timing,
  type ZkEnsemble,
} from '@sched/testkit';
import type pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { lockLeaderEpoch } from '../src/failover/failover-queries.js';
import { MasterNode } from '../src/master-node.js';

// Issue 13, point 4: a ZooKeeper whose data was reset (a lost dataDir, a new ensemble) starts its
// czxids again below `cluster_state.leader_epoch`. Before the fix every elected master refused
// to lead ("a newer leader epoch is already recorded"), in a loop: no failover ever again. Now
// the epoch is (ZooKeeper cluster id, czxid): the leader of the reset ZooKeeper takes the epoch
// over after T + D, and the old ZooKeeper's terms are fenced (docs/decisions/0006-…).
//
// A real master (in process) against a private 3-server ZooKeeper ensemble that the test stops,
// wipes (every server's data, the myid kept) and starts again on the same ports, and the shared
// PostgreSQL. An ensemble, because its zxids (and so czxids) carry the ZooKeeper epoch in their
// high 32 bits: a long-lived ensemble's czxids are above 2^32 times the number of its leader
// elections, and a reset one starts again at epoch 1 — far below, as in production.

const T_MS = 3000;
const D_MS = 2000;
const paths = new RegistryPaths('/sched');

let zk: ZkEnsemble;
let dbUrl: string;
let pool: pg.Pool;
const logs: { msg: string; [k: string]: unknown }[] = [];

beforeAll(async () => {
  zk = await startZooKeeperEnsemble({ size: 3 });
  const db = await createDatabase();
  dbUrl = db.url;
  pool = createPool(db.url, { max: 4 });
  registerCleanup('drop database', async () => {
    await pool.end();
    await db.drop();
  });
});

afterAll(() => {
  if (process.env.SCHED_TEST_VERBOSE === '1') for (const l of logs) console.error(JSON.stringify(l));
});

async function startMaster(): Promise<MasterNode> {
  const dataDir = mkdtempSync(join(tmpdir(), 'sched-zk-reset-'));
  const config = loadConfig({
    env: {
      SCHED_ZK: zk.connectString,
      SCHED_ZK_INSECURE: 'true', // an open tree: the test's own sessions write in it too
      SCHED_DB_URL: dbUrl,
      SCHED_CLUSTER_SECRET: 'zk-reset-secret-0123456789abcdef',
      SCHED_HOST: '127.0.0.1',
      SCHED_PORT: '0',
      SCHED_DATA_DIR: dataDir,
      SCHED_ZK_SESSION_TIMEOUT: `${T_MS}ms`,
      SCHED_FAILOVER_DELAY: `${D_MS}ms`,
      SCHED_HEARTBEAT_INTERVAL: '1s',
    },
  });
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
  const node = await MasterNode.start({ config, logger });
  registerCleanup('stop master', async () => {
    await node.stop();
    rmSync(dataDir, { recursive: true, force: true });
  });
  return node;
}

async function observe(): Promise<ZkSession> {
  const session = await ZkSession.connect({
    connectString: zk.connectString,
    sessionTimeoutMs: T_MS,
    connectTimeoutMs: timing.forWaiting(),
  });
  registerCleanup('close observer', () => session.close());
  return session;
}

/** A master incarnation that only registers (no work): closing its session makes it a dead node to fail over. */
async function fakeMaster(
  port: number,
  seenBy: MasterNode,
): Promise<{ key: string; session: ZkSession; membership: ClusterMembership }> {
  const key = `127.0.0.1:${port}_1700000000000`;
  const session = await observe();
  const heartbeat = (): MasterHeartbeat => ({
    address: `127.0.0.1:${port}`,
    startTime: 1_700_000_000_000,
    pid: process.pid,
    version: 'test',
    cpu: 0,
    memory: 0,
    load: 0,
    state: 'NORMAL',
    reportedAt: new Date().toISOString(),
  });
  const membership = await joinCluster(session, paths, {
    role: 'master',
    nodeKey: key,
    heartbeat,
    intervalMs: 1000,
    onFailedOver: () => {},
  });
  // The leader must have seen it come before it sees it go.
  await eventually(() => expect(seenBy.mastersView.get(key)).toBeDefined(), {
    timeoutMs: timing.forWaiting(),
  });
  return { key, session, membership };
}

async function recorded(): Promise<{ leaderKey: string | null; epoch: bigint }> {
  const { rows } = await pool.query<{ leader_key: string | null; leader_epoch: string }>(
    'SELECT leader_key, leader_epoch::text FROM cluster_state',
  );
  return { leaderKey: rows[0]?.leader_key ?? null, epoch: BigInt(rows[0]?.leader_epoch ?? '0') };
}

async function failoverOf(key: string): Promise<{ leader_epoch: string; leader_key: string } | undefined> {
  const { rows } = await pool.query<{ leader_epoch: string; leader_key: string }>(
    'SELECT leader_epoch::text, leader_key FROM failovers WHERE key = $1',
    [key],
  );
  return rows[0];
}

/** What the master said about leadership, for a failure message. */
function leadershipLog(): string {
  return logs
    .filter((l) => /leader|epoch|cluster id|registration/i.test(l.msg))
    .slice(-12)
    .map((l) => `${l.level} ${l.msg}`)
    .join('\n');
}

async function clusterIdIn(session: ZkSession): Promise<string | undefined> {
  try {
    return (await session.getData('/sched/cluster-id')).data.toString();
  } catch {
    return undefined; // (before the fix there was no such znode)
  }
}

describe('ZooKeeper data reset (issue 13, point 4)', () => {
  it('after ZooKeeper loses its data, a master takes the leader epoch over after T + D, leads and fails nodes over again; the old ZooKeeper epoch is fenced', async () => {
    const master = await startMaster();
    const first = await eventually(
      async () => {
        const r = await recorded();
        expect(r.leaderKey).toBe(master.key);
        return r;
      },
      { timeoutMs: timing.forWaiting() },
    );

    // A long-lived ZooKeeper: down for a while once (same data). The term ended, the ensemble
    // elected a new ZooKeeper leader (epoch 2), and the next term records a czxid above 2^33.
    await zk.stop();
    await timing.sleep(T_MS);
    await Promise.all(zk.servers.map((s) => s.restart()));
    const before = await eventually(
      async () => {
        const r = await recorded();
        expect(r.epoch).toBeGreaterThan(first.epoch);
        expect(r.epoch).toBeGreaterThanOrEqual(2n ** 33n);
        expect(r.leaderKey).toBe(master.key);
        expect(master.isLeader).toBe(true);
        return r;
      },
      { timeoutMs: timing.forWaiting() * 2 },
    );

    // One dead master failed over before the reset: a row and a record in the old data.
    let observer = await observe();
    const oldClusterId = await clusterIdIn(observer);
    const gone = await fakeMaster(7901, master);
    await gone.session.close();
    await eventually(async () => expect(await failoverOf(gone.key)).toBeDefined(), {
      timeoutMs: timing.forWaiting(),
    });
    // The record is written just after the failover's transaction commits: wait for it too.
    const records = new FailoverRecords(observer, paths);
    await eventually(async () => expect(await records.read('master', gone.key)).toBeDefined(), {
      timeoutMs: timing.forWaiting(),
    });
    await observer.close();

    // The reset: ZooKeeper stops, its data is wiped (snapshots and logs; each server keeps its
    // myid), it starts again on the same ports.
    await zk.stop();
    for (const server of zk.servers)
      rmSync(join(server.dataDir, 'version-2'), { recursive: true, force: true });
    await Promise.all(zk.servers.map((s) => s.restart()));
    observer = await observe();

    // The master gets a new session in the new data, registers again and is the only candidate:
    // its candidate's czxid is below the recorded epoch (what made every term refuse before).
    await eventually(
      async () => {
        const candidate = master.election.candidateNode;
        expect(candidate).toBeDefined();
        const stat = await observer.exists(candidate as string);
        expect(stat).toBeDefined();
        expect(stat?.czxid ?? 0n).toBeLessThan(before.epoch);
      },
      { timeoutMs: timing.forWaiting() * 2 },
    );

    // It leads again: the epoch is recorded for the new ZooKeeper (after T + D, not at once)...
    const after = await eventually(
      async () => {
        const r = await recorded();
        if (r.epoch === before.epoch || r.leaderKey !== master.key) {
          throw new Error(
            `no new leader epoch recorded (still ${r.epoch}); the master said:\n${leadershipLog()}`,
          );
        }
        return r;
      },
      { timeoutMs: timing.forWaiting() * 3, intervalMs: 250 },
    );
    expect(after.epoch).toBeLessThan(before.epoch);
    const newClusterId = await clusterIdIn(observer);
    expect(newClusterId).toBeDefined();
    expect(newClusterId).not.toBe(oldClusterId);
    const { rows } = await pool.query<{ zk_cluster_id: string; retired_zk_cluster_ids: string[] }>(
      'SELECT zk_cluster_id, retired_zk_cluster_ids FROM cluster_state',
    );
    expect(rows[0]?.zk_cluster_id).toBe(newClusterId);
    expect(rows[0]?.retired_zk_cluster_ids).toEqual([oldClusterId]);
    // ...said loudly, and only after waiting T + D.
    const detected = logs.find((l) => l.msg.includes('differs from the one recorded with the leader epoch'));
    const took = logs.find((l) => l.msg.startsWith('took leadership over for ZooKeeper'));
    expect(detected?.level).toBe(50); // error
    expect(took).toBeDefined();
    expect(Date.parse(took?.time as string) - Date.parse(detected?.time as string)).toBeGreaterThanOrEqual(
      T_MS + D_MS - 50,
    );

    // The old failover's record is written again in the new data (a zombie still finds it).
    await eventually(
      async () => expect(await new FailoverRecords(observer, paths).read('master', gone.key)).toBeDefined(),
      { timeoutMs: timing.forWaiting() },
    );

    // Failover works again: a master that dies now is failed over under the new epoch.
    const dying = await fakeMaster(7902, master);
    await dying.session.close();
    const row = await eventually(
      async () => {
        const r = await failoverOf(dying.key);
        if (!r) throw new Error(`not failed over; the master said:\n${leadershipLog()}`);
        return r;
      },
      { timeoutMs: timing.forWaiting() },
    );
    expect(row).toEqual({ leader_epoch: after.epoch.toString(), leader_key: master.key });

    // A leader of the old ZooKeeper cannot write any more: its epoch no longer locks.
    await expect(
      withTransaction(pool, (tx) =>
        lockLeaderEpoch(tx, { clusterId: oldClusterId as string, czxid: Number(before.epoch) }),
      ),
    ).rejects.toBeInstanceOf(FencedWriteError);
    // Nor can a term of the new ZooKeeper with the old czxid (the pair must match).
    await expect(
      withTransaction(pool, (tx) =>
        lockLeaderEpoch(tx, { clusterId: newClusterId as string, czxid: Number(before.epoch) }),
      ),
    ).rejects.toBeInstanceOf(FencedWriteError);
    // The current term's does.
    await withTransaction(pool, (tx) =>
      lockLeaderEpoch(tx, { clusterId: newClusterId as string, czxid: Number(after.epoch) }),
    );
  }, 150_000);
});
