import { Writable } from 'node:stream';
import { createLogger, FencedWriteError } from '@sched/core';
import {
  clusterIdPath,
  LeaderElection,
  type LeadershipTerm,
  RegistryPaths,
  ZkSession,
} from '@sched/registry';
import { type LeaderEpoch, readLeaderEpoch, withTransaction } from '@sched/store';
import { EventQueue, registerCleanup, sharedZooKeeper, timing, zkChroot } from '@sched/testkit';
import type pg from 'pg';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { lockLeaderEpoch } from '../src/failover/failover-queries.js';
import { claimLeaderEpoch } from '../src/failover/leader-epoch.js';
import { migratedDatabase } from './scheduler-fixtures.js';

// The leader epoch across ZooKeeper generations (docs/decisions/0006-…): claimLeaderEpoch with
// real elections on two ZooKeeper trees (two chroots of the shared server, each with its own
// `{root}/cluster-id`: two "ZooKeepers" as far as sched can tell) and a real PostgreSQL. The
// full reset of a real ensemble under a real master is zk-reset-leadership.integration.test.ts.

const WAIT_MS = 1500;
const paths = new RegistryPaths('/sched');
let pool: pg.Pool;
/** What this test started, closed after it (so no term of one test claims in the next one's database). */
let closeAfterTest: (() => Promise<void>)[] = [];

beforeEach(async () => {
  const db = await migratedDatabase();
  pool = db.pool;
  registerCleanup('drop database', db.drop);
});

afterEach(async () => {
  for (const close of closeAfterTest.reverse()) await close().catch(() => {});
  closeAfterTest = [];
});

interface Candidate {
  session: ZkSession;
  election: LeaderElection;
  /** Every claim's outcome: the epoch recorded, or undefined (the term was given up). */
  claims: EventQueue<{ epoch: LeaderEpoch | undefined; at: number }>;
  terms: EventQueue<LeadershipTerm>;
  logs: { msg: string; level: number }[];
  /** Ends the current term the way an operator would: deletes its candidate node. */
  newTerm(): Promise<void>;
}

async function candidate(connect: string, key: string): Promise<Candidate> {
  const session = await ZkSession.connect({
    connectString: connect,
    sessionTimeoutMs: timing.session(),
    connectTimeoutMs: timing.forWaiting(),
  });
  closeAfterTest.push(() => session.close());
  const db = pool;
  const claims = new EventQueue<{ epoch: LeaderEpoch | undefined; at: number }>();
  const terms = new EventQueue<LeadershipTerm>();
  const logs: { msg: string; level: number }[] = [];
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
  const election = new LeaderElection(session, paths, {
    nodeKey: key,
    onLeadership: async (term) => {
      terms.push(term);
      const epoch = await claimLeaderEpoch({
        pool: db,
        term,
        nodeKey: key,
        takeoverWaitMs: WAIT_MS,
        clusterIdPath: clusterIdPath(paths),
        logger,
      });
      claims.push({ epoch, at: Date.now() });
      if (!epoch) return;
      await new Promise((resolve) => term.signal.addEventListener('abort', resolve, { once: true }));
    },
  });
  closeAfterTest.push(() => election.close());
  election.start();
  return {
    session,
    election,
    claims,
    terms,
    logs,
    async newTerm() {
      const node = election.candidateNode;
      if (node) await session.remove(node);
    },
  };
}

function lock(epoch: LeaderEpoch): Promise<void> {
  return withTransaction(pool, (tx) => lockLeaderEpoch(tx, epoch));
}

describe('claimLeaderEpoch', () => {
  it('the same ZooKeeper: each term advances the epoch at once; a stale term of it is fenced', async () => {
    const a = await candidate(await zkChroot(await sharedZooKeeper(), 'epoch-same'), 'a:1_1');
    const first = (await a.claims.next()).epoch as LeaderEpoch;
    expect(first).toBeDefined();
    const clusterId = (await a.session.getData(clusterIdPath(paths))).data.toString();
    expect(first.clusterId).toBe(clusterId);
    await lock(first);

    const asked = Date.now();
    await a.newTerm();
    const second = await a.claims.next();
    expect(second.epoch?.clusterId).toBe(clusterId);
    expect(second.epoch?.czxid).toBeGreaterThan(first.czxid);
    expect(second.at - asked).toBeLessThan(WAIT_MS); // no waiting within one ZooKeeper
    await expect(lock(first)).rejects.toBeInstanceOf(FencedWriteError);
    await lock(second.epoch as LeaderEpoch);
    expect(a.logs.some((l) => l.level >= 50)).toBe(false);
  });

  it('another ZooKeeper takes the epoch over only once the recorded one stayed unchanged for the wait; the old one is fenced, retired, and never leads again', async () => {
    const zk = await sharedZooKeeper();
    const old = await candidate(await zkChroot(zk, 'epoch-old'), 'old:1_1');
    const oldFirst = (await old.claims.next()).epoch as LeaderEpoch;

    // A second ZooKeeper (a reset or replaced one): its leader waits, loudly.
    const fresh = await candidate(await zkChroot(zk, 'epoch-new'), 'new:1_1');
    const freshTerm = await fresh.terms.next();
    const freshId = freshTerm.clusterId;
    expect(freshId).not.toBe(oldFirst.clusterId);
    await fresh.claims.expectQuiet(WAIT_MS / 2);

    // Meanwhile the old ZooKeeper still elects (it is alive): its new term is recorded, and the
    // takeover has to wait again from there.
    await old.newTerm();
    const oldSecond = await old.claims.next();
    expect(oldSecond.epoch?.clusterId).toBe(oldFirst.clusterId);
    const took = await fresh.claims.next(timing.forWaiting());
    expect(took.epoch).toEqual({ clusterId: freshId, czxid: Number(freshTerm.token) });
    expect(took.at - oldSecond.at).toBeGreaterThanOrEqual(WAIT_MS - 50);
    expect(fresh.logs.filter((l) => l.msg.includes('differs from the one recorded')).length).toBe(2);
    expect(fresh.logs.some((l) => l.msg.includes('changed while waiting'))).toBe(true);

    const recorded = await readLeaderEpoch(pool);
    expect(recorded).toMatchObject({
      clusterId: freshId,
      czxid: Number(freshTerm.token),
      leaderKey: 'new:1_1',
      retired: [oldFirst.clusterId],
    });

    // The old ZooKeeper's leader still believes it leads; it cannot write.
    expect(old.election.isLeader()).toBe(true);
    await expect(lock(oldSecond.epoch as LeaderEpoch)).rejects.toBeInstanceOf(FencedWriteError);
    await lock(took.epoch as LeaderEpoch);

    // Its next term refuses to lead (its id is retired), and the epoch stays the new one.
    await old.newTerm();
    const refused = await old.claims.next(timing.forWaiting());
    expect(refused.epoch).toBeUndefined();
    expect(old.logs.some((l) => l.level === 50 && l.msg.includes('was retired'))).toBe(true);
    expect(await readLeaderEpoch(pool)).toMatchObject({ clusterId: freshId, czxid: Number(freshTerm.token) });
  }, 60_000);

  it('an epoch recorded before ZooKeeper ids: adopted at once when the czxid is above it, taken over after the wait when it is not', async () => {
    const zk = await sharedZooKeeper();
    await pool.query(`UPDATE cluster_state SET leader_epoch = 1, zk_cluster_id = NULL`);
    const a = await candidate(await zkChroot(zk, 'epoch-legacy-a'), 'a:1_1');
    const adopted = await a.claims.next();
    expect(adopted.epoch).toBeDefined();
    expect(a.logs.some((l) => l.level >= 50)).toBe(false);
    expect((await readLeaderEpoch(pool)).clusterId).toBe(adopted.epoch?.clusterId);
    await a.election.close();

    await pool.query(`UPDATE cluster_state SET leader_epoch = $1, zk_cluster_id = NULL`, [2 ** 52]);
    const b = await candidate(await zkChroot(zk, 'epoch-legacy-b'), 'b:1_1');
    const term = await b.terms.next();
    const started = Date.now();
    const taken = await b.claims.next();
    expect(taken.epoch).toEqual({ clusterId: term.clusterId, czxid: Number(term.token) });
    expect(taken.at - started).toBeGreaterThanOrEqual(WAIT_MS - 100);
    expect((await readLeaderEpoch(pool)).retired).toEqual([]); // nothing to retire: no id was recorded
  }, 60_000);
});
