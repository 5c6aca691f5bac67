import { EventQueue, FaultProxy, sharedZooKeeper, timing, zkChroot } from '@sched/testkit';
import zookeeper from 'node-zookeeper-client';
import { beforeAll, describe, expect, it } from 'vitest';
import { type ClusterMembership, joinCluster } from '../src/join-cluster.js';
import { RegistryPaths } from '../src/registry-paths.js';
import type { ZkSession } from '../src/zk-session.js';
import { masterHeartbeat } from './support/heartbeats.js';
import { expireSessionOnServer, openSession, rawClient } from './support/zk.js';

// Issue 13, point 8: a re-registration after a new session that fails was never retried, so the
// incarnation stayed up, unregistered and refusing work. It must be retried with backoff until
// it succeeds (docs/registry.md#joining-the-cluster-the-zombies-half-of-the-failover-protocol).
// The failure is real: ZooKeeper itself refuses the create (an ACL on the members' parent).

const T = 3000;
const paths = new RegistryPaths('/sched');
let zk: Awaited<ReturnType<typeof sharedZooKeeper>>;

beforeAll(async () => {
  zk = await sharedZooKeeper();
});

/** Read and ADMIN (so the ACL can be put back), no CREATE. */
const READ_ONLY = zookeeper.Permission.READ | zookeeper.Permission.ADMIN;

function setAcl(client: zookeeper.Client, path: string, permission: number): Promise<void> {
  const acl = [new zookeeper.ACL(permission, new zookeeper.Id('world', 'anyone'))];
  return new Promise((resolve, reject) =>
    client.setACL(path, acl, -1, (err) => (err ? reject(err) : resolve())),
  );
}

interface Joined {
  membership: ClusterMembership;
  registered: EventQueue<number>;
  errors: EventQueue<string>;
  retries: EventQueue<{ failures: number; delayMs: number }>;
  /** Counts of every error and retry so far. */
  counts: { errors: number; retries: number };
}

async function join(session: ZkSession, key: string, port: number): Promise<Joined> {
  const registered = new EventQueue<number>();
  const errors = new EventQueue<string>();
  const retries = new EventQueue<{ failures: number; delayMs: number }>();
  const counts = { errors: 0, retries: 0 };
  const membership = await joinCluster(session, paths, {
    role: 'master',
    nodeKey: key,
    heartbeat: () => masterHeartbeat(port),
    intervalMs: 500,
    onRegistered: (reg) => registered.push(reg.generation),
    onFailedOver: () => {},
  });
  membership.registration.on('error', (err) => {
    counts.errors++;
    errors.push(String((err as { code?: unknown }).code));
  });
  membership.registration.on('retrying', ({ failures, delayMs }) => {
    counts.retries++;
    retries.push({ failures, delayMs });
  });
  return { membership, registered, errors, retries, counts };
}

describe('re-registration after a new session', () => {
  it('a re-registration that ZooKeeper refuses is retried with backoff until it succeeds; the state says retrying meanwhile', async () => {
    const direct = await zkChroot(zk, 'rereg-retry');
    const chroot = direct.slice(direct.indexOf('/'));
    const proxy = await FaultProxy.start({ host: zk.host, port: zk.port });
    const session = await openSession(`${proxy.address}${chroot}`, { sessionTimeoutMs: T });
    const observer = await openSession(direct);
    const admin = await rawClient(direct);
    const key = '127.0.0.1:7510_1700000000000';
    const joined = await join(session, key, 7510);
    expect(await joined.registered.next(0)).toBe(1);

    // ZooKeeper now refuses to create anything under the members' parent (no CREATE for anyone).
    await setAcl(admin, paths.members('master'), READ_ONLY);

    // The session ends on the server; the member gets a new one and must register again.
    const generation = session.generation;
    proxy.setMode('down');
    await expireSessionOnServer(direct, session.credentials, T);
    proxy.setMode('pass');
    await session.waitFor(
      (s) => s.kind === 'RECONNECTED' && s.newSession && s.generation > generation,
      timing.forWaiting(),
    );

    // The re-registration fails for real (NO_AUTH), and is tried again (before the fix, once
    // only: the second error never came), with a growing backoff.
    expect(await joined.errors.next()).toBe('ZK_NO_AUTH');
    expect(await joined.errors.next()).toBe('ZK_NO_AUTH');
    expect(await observer.exists(paths.member('master', key))).toBeUndefined();
    const first = await joined.retries.next();
    const second = await joined.retries.next();
    expect(second.failures).toBe(first.failures + 1);
    expect(second.delayMs).toBeGreaterThan(first.delayMs);
    expect(joined.membership.registration.state).toBe('retrying');
    expect(joined.membership.registration.failures.inRow).toBeGreaterThanOrEqual(2);

    // ZooKeeper accepts it again: the next retry registers, in the live session, with the same key.
    await setAcl(admin, paths.members('master'), zookeeper.Permission.ALL);
    expect(await joined.registered.next()).toBe(generation + 1);
    const stat = await observer.exists(paths.member('master', key));
    expect(stat?.ephemeralOwner).toBe(session.sessionId);
    expect(joined.membership.registration.state).toBe('registered');
    expect(joined.membership.registration.failures.inRow).toBe(0);
    // Registered for good: no more retries.
    const retried = joined.counts.retries;
    await timing.sleep(1500);
    expect(joined.counts.retries).toBe(retried);
    await joined.membership.stop();
    expect(joined.membership.registration.state).toBe('stopped');
  }, 60_000);

  it('a deleted members parent is created again by the re-registration', async () => {
    const direct = await zkChroot(zk, 'rereg-parent');
    const chroot = direct.slice(direct.indexOf('/'));
    const proxy = await FaultProxy.start({ host: zk.host, port: zk.port });
    const session = await openSession(`${proxy.address}${chroot}`, { sessionTimeoutMs: T });
    const observer = await openSession(direct);
    const key = '127.0.0.1:7511_1700000000000';
    const joined = await join(session, key, 7511);
    expect(await joined.registered.next(0)).toBe(1);

    const generation = session.generation;
    proxy.setMode('down');
    await expireSessionOnServer(direct, session.credentials, T);
    // Our node went with the session; an operator deletes the (now empty) parent.
    await observer.remove(paths.members('master'));
    proxy.setMode('pass');

    expect(await joined.registered.next()).toBe(generation + 1);
    expect((await observer.exists(paths.member('master', key)))?.ephemeralOwner).toBe(session.sessionId);
    await joined.membership.stop();
  }, 60_000);

  it('a stop() while retrying ends the retries', async () => {
    const direct = await zkChroot(zk, 'rereg-stop');
    const chroot = direct.slice(direct.indexOf('/'));
    const proxy = await FaultProxy.start({ host: zk.host, port: zk.port });
    const session = await openSession(`${proxy.address}${chroot}`, { sessionTimeoutMs: T });
    const admin = await rawClient(direct);
    const key = '127.0.0.1:7512_1700000000000';
    const joined = await join(session, key, 7512);
    expect(await joined.registered.next(0)).toBe(1);
    await setAcl(admin, paths.members('master'), READ_ONLY);

    const generation = session.generation;
    proxy.setMode('down');
    await expireSessionOnServer(direct, session.credentials, T);
    proxy.setMode('pass');
    await session.waitFor(
      (s) => s.kind === 'RECONNECTED' && s.newSession && s.generation > generation,
      timing.forWaiting(),
    );
    await joined.retries.next();
    await joined.membership.stop();
    expect(joined.membership.registration.state).toBe('stopped');
    const seen = { ...joined.counts };
    await setAcl(admin, paths.members('master'), zookeeper.Permission.ALL);
    await timing.sleep(1500);
    expect(joined.counts).toEqual(seen);
    await joined.registered.expectQuiet(0);
  }, 60_000);
});
