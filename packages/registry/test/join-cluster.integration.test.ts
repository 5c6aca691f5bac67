import { EventQueue, eventually, FaultProxy, sharedZooKeeper, timing, zkChroot } from '@sched/testkit';
import { beforeAll, describe, expect, it } from 'vitest';
import { type FailoverRecord, FailoverRecords } from '../src/failover-records.js';
import { type ClusterMembership, joinCluster } from '../src/join-cluster.js';
import { RegistryPaths } from '../src/registry-paths.js';
import type { ZkSession } from '../src/zk-session.js';
import { masterHeartbeat } from './support/heartbeats.js';
import { expireSessionOnServer, openSession } from './support/zk.js';

// joinCluster: the zombie's half of the failover protocol (docs/design.md#zombies) against a
// real ZooKeeper.

const T = 3000;
const paths = new RegistryPaths('/sched');
let zk: Awaited<ReturnType<typeof sharedZooKeeper>>;

beforeAll(async () => {
  zk = await sharedZooKeeper();
});

function recordFor(port: number, by: string): FailoverRecord {
  return {
    role: 'master',
    address: `127.0.0.1:${port}`,
    startTime: 1_700_000_000_000,
    pid: process.pid,
    sessionId: null,
    failedOverAt: new Date().toISOString(),
    by,
    tasks: 0,
    runs: 2,
  };
}

interface Joined {
  membership: ClusterMembership;
  /** Every `onFailedOver` call, with the record's `by`. */
  failedOver: EventQueue<string>;
  /** Every `onRegistered` call, with the registration's generation. */
  registered: EventQueue<number>;
  /** Every registration error, with how many `onFailedOver` calls had been made by then. */
  errors: EventQueue<{ code: unknown; message: string; toldBefore: number }>;
}

async function join(session: ZkSession, key: string, port: number): Promise<Joined> {
  const failedOver = new EventQueue<string>();
  const registered = new EventQueue<number>();
  const errors = new EventQueue<{ code: unknown; message: string; toldBefore: number }>();
  let told = 0;
  const membership = await joinCluster(session, paths, {
    role: 'master',
    nodeKey: key,
    heartbeat: () => masterHeartbeat(port),
    intervalMs: 500,
    onRegistered: (reg) => registered.push(reg.generation),
    onFailedOver: (record) => {
      told++;
      failedOver.push(record.by);
    },
  });
  membership.registration.on('error', (err) =>
    errors.push({
      code: (err as { code?: unknown }).code,
      message: (err as Error).message,
      toldBefore: told,
    }),
  );
  return { membership, failedOver, registered, errors };
}

/** A fresh tree, a member session, an observer session, and a member joined as `127.0.0.1:{port}`. */
async function joinFresh(name: string, port: number) {
  const connect = await zkChroot(zk, name);
  const session = await openSession(connect, { sessionTimeoutMs: T });
  const observer = await openSession(connect);
  const key = `127.0.0.1:${port}_1700000000000`;
  return { session, observer, key, ...(await join(session, key, port)) };
}

/** A session behind a proxy, so the test can expire it on the server and keep it from re-attaching. */
async function sessionBehindProxy(
  name: string,
): Promise<{ session: ZkSession; proxy: FaultProxy; direct: string }> {
  const direct = await zkChroot(zk, name);
  const proxy = await FaultProxy.start({ host: zk.host, port: zk.port });
  const session = await openSession(`${proxy.address}${direct.slice(direct.indexOf('/'))}`, {
    sessionTimeoutMs: T,
  });
  return { session, proxy, direct };
}

/** Ends `session`'s ZooKeeper session on the server; resolves once it runs on a new one. */
async function forceNewSession(session: ZkSession, proxy: FaultProxy, direct: string): Promise<void> {
  const generation = session.generation;
  proxy.setMode('down');
  await expireSessionOnServer(direct, session.credentials, T);
  proxy.setMode('pass');
  await session.waitFor(
    (s) => s.kind === 'RECONNECTED' && s.newSession && s.generation > generation,
    timing.forWaiting(),
  );
}

describe('joinCluster', () => {
  it('lays out the tree, registers with the heartbeat, and stop() deregisters (no termination after it)', async () => {
    const { session, observer, key, ...joined } = await joinFresh('join-basic', 7500);

    // The whole layout exists, not only the members' parent.
    for (const parent of paths.parents) expect(await observer.exists(parent)).toBeDefined();
    expect(await joined.registered.next(0)).toBe(1); // the first registration, before join resolved
    const stat = await observer.exists(paths.member('master', key));
    expect(stat?.ephemeralOwner).toBe(session.sessionId);
    expect(stat?.czxid).toBe(joined.membership.registration.registration?.czxid);
    const { data } = await observer.getData(paths.member('master', key));
    expect(JSON.parse(data?.toString() ?? '{}')).toMatchObject({
      address: '127.0.0.1:7500',
      state: 'NORMAL',
    });
    // The records it opened are on the same tree.
    await new FailoverRecords(observer, paths).write('127.0.0.1:7599_1', recordFor(7599, 'leader-0'));
    expect((await joined.membership.records.read('master', '127.0.0.1:7599_1'))?.by).toBe('leader-0');

    await joined.membership.stop();
    expect(await observer.exists(paths.member('master', key))).toBeUndefined();
    // Stopped: a record written now is nobody's business.
    await new FailoverRecords(observer, paths).write(key, recordFor(7500, 'leader-late'));
    await joined.failedOver.expectQuiet(1000);
    expect(joined.membership.failedOver).toBeUndefined();
    expect(session.status.kind).toBe('CONNECTED'); // stop() leaves the session to its owner
  });

  it('re-registers with the same key in a new session without a record; refuses and terminates once when its record exists', async () => {
    const { session, proxy, direct } = await sessionBehindProxy('join-reregister');
    const observer = await openSession(direct);
    const key = '127.0.0.1:7501_1700000000000';
    const joined = await join(session, key, 7501);
    expect(await joined.registered.next(0)).toBe(1);
    const firstCzxid = joined.membership.registration.registration?.czxid as bigint;

    // No record: a new session registers again, same key, a new registration.
    await forceNewSession(session, proxy, direct);
    expect(await joined.registered.next()).toBe(2);
    const again = await observer.exists(paths.member('master', key));
    expect(again?.ephemeralOwner).toBe(session.sessionId);
    expect(again?.czxid).toBeGreaterThan(firstCzxid);
    await joined.failedOver.expectQuiet(300);

    // The leader failed it over while it was away: the next re-registration finds the record.
    proxy.setMode('down');
    await expireSessionOnServer(direct, session.credentials, T);
    await eventually(async () => expect(await observer.exists(paths.member('master', key))).toBeUndefined());
    await new FailoverRecords(observer, paths).write(key, recordFor(7501, 'leader-1'));
    proxy.setMode('pass');

    expect(await joined.failedOver.next()).toBe('leader-1');
    expect(joined.membership.failedOver?.by).toBe('leader-1');
    const refused = await joined.errors.next();
    expect(refused).toEqual({
      code: 'FAILED_OVER',
      message: `master ${key} was failed over; this incarnation must exit`,
      toldBefore: 1, // the caller heard of it before the refusal was reported
    });
    await session.waitFor((s) => s.kind === 'RECONNECTED' && s.generation === 3, timing.forWaiting());
    // It did not come back, and it is told once (the watch of the new session sees the record too).
    await joined.failedOver.expectQuiet(1500);
    await joined.registered.expectQuiet(0);
    expect(await observer.exists(paths.member('master', key))).toBeUndefined();
    await joined.membership.stop();
  }, 60_000);

  it('a record that appears while registered terminates it once; from then on it refuses to register again', async () => {
    const { observer, key, ...joined } = await joinFresh('join-watch', 7502);
    expect(await joined.registered.next(0)).toBe(1);
    await timing.sleep(200); // the watch is armed

    // Another key's record is not ours.
    await new FailoverRecords(observer, paths).write('127.0.0.1:7503_1700000000000', recordFor(7503, 'x'));
    await joined.failedOver.expectQuiet(300);

    await new FailoverRecords(observer, paths).write(key, recordFor(7502, 'leader-2'));
    expect(await joined.failedOver.next(1000)).toBe('leader-2');

    // An operator deletes the znode: the registration would put it back in the same session,
    // but a failed-over incarnation does not come back (and is not told again).
    await observer.remove(paths.member('master', key));
    const refused = await joined.errors.next();
    expect(refused.code).toBe('FAILED_OVER');
    expect(refused.toldBefore).toBe(1);
    await joined.failedOver.expectQuiet(1000);
    await joined.registered.expectQuiet(0);
    expect(await observer.exists(paths.member('master', key))).toBeUndefined();
    await joined.membership.stop();
  });

  it('a first registration that fails rejects the join and leaves nothing registered', async () => {
    const connect = await zkChroot(zk, 'join-fails');
    const session = await openSession(connect, { sessionTimeoutMs: T });
    const observer = await openSession(connect);
    const key = '127.0.0.1:7504_1700000000000';
    const told = new EventQueue<string>();
    await expect(
      joinCluster(session, paths, {
        role: 'master',
        nodeKey: key,
        // Invalid heartbeat JSON: the registration cannot write it.
        heartbeat: () => ({ ...masterHeartbeat(7504), state: 'SLEEPY' as 'NORMAL' }),
        intervalMs: 500,
        onFailedOver: (r) => told.push(r.by),
      }),
    ).rejects.toThrow();
    expect(await observer.exists(paths.member('master', key))).toBeUndefined();
    await new FailoverRecords(observer, paths).write(key, recordFor(7504, 'leader-3'));
    await told.expectQuiet(500);
  });
});
