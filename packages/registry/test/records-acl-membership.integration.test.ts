import { performance } from 'node:perf_hooks';
import type { Clock } from '@sched/core';
import { EventQueue, eventually, sharedZooKeeper, timing, zkChroot } from '@sched/testkit';
import { beforeAll, describe, expect, it } from 'vitest';
import { type FailoverRecord, FailoverRecords } from '../src/failover-records.js';
import type { MasterHeartbeat } from '../src/heartbeat.js';
import { ensureLayout } from '../src/layout.js';
import { MemberRegistration } from '../src/member-registration.js';
import { MembersView } from '../src/members-view.js';
import { RegistryPaths } from '../src/registry-paths.js';
import { masterHeartbeat } from './support/heartbeats.js';
import { openSession } from './support/zk.js';

// FAILOVER_FINISH_NODES records, digest ACLs, and membership.

let zkConnect: string;
const paths = new RegistryPaths('/sched');
const DAY = 86_400_000;

beforeAll(async () => {
  zkConnect = (await sharedZooKeeper()).connectString;
});

function record(role: 'master' | 'worker', port: number, failedOverAt: number): FailoverRecord {
  return {
    role,
    address: `127.0.0.1:${port}`,
    startTime: 1_700_000_000_000,
    pid: 4242,
    sessionId: '0100000000000001',
    failedOverAt: new Date(failedOverAt).toISOString(),
    by: '127.0.0.1:5000_1700000000000',
    tasks: 3,
    runs: 1,
  };
}

describe('FAILOVER_FINISH_NODES records', () => {
  it('round-trips a record; writing again keeps the first; list sorts by key', async () => {
    const connect = await zkChroot({ connectString: zkConnect }, 'records-roundtrip');
    const records = new FailoverRecords(await openSession(connect), paths);
    const rec = record('worker', 7100, Date.now());
    expect(await records.write('127.0.0.1:7100_1700000000000', rec)).toEqual({ created: true });
    expect(await records.read('worker', '127.0.0.1:7100_1700000000000')).toEqual(rec);
    expect(await records.write('127.0.0.1:7100_1700000000000', { ...rec, by: 'someone-else' })).toEqual({
      created: false,
    });
    expect((await records.read('worker', '127.0.0.1:7100_1700000000000'))?.by).toBe(rec.by);
    expect(await records.read('master', '127.0.0.1:7100_1700000000000')).toBeUndefined();
    await records.write('127.0.0.1:7000_1700000000000', record('worker', 7000, Date.now()));
    expect((await records.list('worker')).map((r) => r.key)).toEqual([
      '127.0.0.1:7000_1700000000000',
      '127.0.0.1:7100_1700000000000',
    ]);
    await expect(records.write('k', { ...rec, tasks: -1 })).rejects.toThrow();
  });

  it('a node watching for its own record is told within one second of the write (and not for other keys)', async () => {
    const connect = await zkChroot({ connectString: zkConnect }, 'records-watch');
    const mine = new FailoverRecords(await openSession(connect), paths);
    const leader = new FailoverRecords(await openSession(connect), paths);
    const told = new EventQueue<FailoverRecord>();
    const key = '127.0.0.1:7200_1700000000000';
    mine.watchFor('worker', key, told.push);
    await timing.sleep(200); // the watch is armed
    await leader.write('127.0.0.1:7201_1700000000000', record('worker', 7201, Date.now()));
    await leader.write(key.replace('7200', '7202'), record('master', 7202, Date.now()));
    await told.expectQuiet(300);
    const writtenAt = performance.now();
    await leader.write(key, record('worker', 7200, Date.now()));
    const got = await told.next(1000);
    expect(performance.now() - writtenAt).toBeLessThan(1000);
    expect(got.address).toBe('127.0.0.1:7200');
    // Already present when the watch starts: told at once.
    const late = new EventQueue<FailoverRecord>();
    mine.watchFor('worker', key, late.push);
    expect((await late.next(1000)).address).toBe('127.0.0.1:7200');
  });

  it('purge removes only records older than the retention', async () => {
    const connect = await zkChroot({ connectString: zkConnect }, 'records-purge');
    const session = await openSession(connect);
    const now = Date.now();
    const clock: Clock = { now: () => now, monotonic: () => performance.now() };
    const records = new FailoverRecords(session, paths, { clock });
    await records.write('127.0.0.1:1_1', record('worker', 1, now - 8 * DAY));
    await records.write('127.0.0.1:2_1', record('master', 2, now - 7 * DAY - 1000));
    await records.write('127.0.0.1:3_1', record('worker', 3, now - 6 * DAY));
    await records.write('127.0.0.1:4_1', record('master', 4, now));
    const removed = await records.purge(7 * DAY);
    expect(removed.sort()).toEqual([
      paths.failoverRecord('master', '127.0.0.1:2_1'),
      paths.failoverRecord('worker', '127.0.0.1:1_1'),
    ]);
    expect((await records.list()).map((r) => r.key).sort()).toEqual(['127.0.0.1:3_1', '127.0.0.1:4_1']);
  });
});

describe('digest ACL', () => {
  it('with auth configured, an unauthenticated (or wrongly authenticated) client cannot create, change or delete under the root', async () => {
    const connect = await zkChroot({ connectString: zkConnect }, 'acl');
    const owner = await openSession(connect, { auth: 'sched:s3cret' });
    await ensureLayout(owner, paths);
    await owner.create(`${paths.members('worker')}/w1`, Buffer.from('{}'));
    for (const intruder of [
      await openSession(connect),
      await openSession(connect, { auth: 'sched:wrong' }),
    ]) {
      await expect(intruder.create(`${paths.root}/evil`, Buffer.from('x'))).rejects.toMatchObject({
        code: 'ZK_NO_AUTH',
      });
      await expect(
        intruder.create(`${paths.members('worker')}/evil`, undefined, { mode: 'ephemeral' }),
      ).rejects.toMatchObject({
        code: 'ZK_NO_AUTH',
      });
      await expect(intruder.setData(paths.root, Buffer.from('x'))).rejects.toMatchObject({
        code: 'ZK_NO_AUTH',
      });
      await expect(intruder.setData(`${paths.members('worker')}/w1`, Buffer.from('x'))).rejects.toMatchObject(
        {
          code: 'ZK_NO_AUTH',
        },
      );
      await expect(intruder.remove(`${paths.members('worker')}/w1`)).rejects.toMatchObject({
        code: 'ZK_NO_AUTH',
      });
      await expect(intruder.remove(paths.election)).rejects.toMatchObject({ code: 'ZK_NO_AUTH' });
      // Nor read (not world-readable by default: sched-ctl uses the same credentials).
      await expect(intruder.getChildren(paths.root)).rejects.toMatchObject({ code: 'ZK_NO_AUTH' });
      await expect(intruder.getData(`${paths.members('worker')}/w1`)).rejects.toMatchObject({
        code: 'ZK_NO_AUTH',
      });
    }
    // World-readable on request (aclWorldReadable): others may read, never change.
    const readable = await openSession(connect, { auth: 'sched:s3cret', aclWorldReadable: true });
    await readable.create(`${paths.root}/readable`, Buffer.from('r'));
    const reader = await openSession(connect);
    expect((await reader.getData(`${paths.root}/readable`)).data.toString()).toBe('r');
    await expect(reader.setData(`${paths.root}/readable`, Buffer.from('x'))).rejects.toMatchObject({
      code: 'ZK_NO_AUTH',
    });
    await readable.remove(`${paths.root}/readable`);
    // The owner can do all of it.
    await owner.setData(`${paths.members('worker')}/w1`, Buffer.from('{"ok":1}'));
    await owner.remove(`${paths.members('worker')}/w1`);
  });

  it('without auth, znodes are open (the default)', async () => {
    const connect = await zkChroot({ connectString: zkConnect }, 'acl-open');
    const owner = await openSession(connect);
    await ensureLayout(owner, paths);
    const other = await openSession(connect);
    await other.create(`${paths.root}/x`, undefined);
    await other.remove(`${paths.root}/x`);
  });
});

describe('membership: registration and live view', () => {
  it('the view reports added, updated (interval and immediate refresh) and removed; a deleted registration is put back', async () => {
    const connect = await zkChroot({ connectString: zkConnect }, 'membership');
    const watcherSession = await openSession(connect);
    const view = new MembersView(watcherSession, paths, 'master');
    await view.start();
    const events = new EventQueue<string>();
    view.on('added', (m) => events.push(`added ${m.key} ${m.heartbeat.state}`));
    view.on('updated', (m) => events.push(`updated ${m.key} ${m.heartbeat.state}`));
    view.on('removed', (m) => events.push(`removed ${m.key}`));

    const memberSession = await openSession(connect);
    let state: MasterHeartbeat['state'] = 'NORMAL';
    const key = '127.0.0.1:7300_1700000000000';
    const reg = new MemberRegistration(memberSession, paths, {
      role: 'master',
      nodeKey: key,
      intervalMs: 300,
      heartbeat: () => masterHeartbeat(7300, state),
    });
    await reg.start();
    expect(await events.next()).toBe(`added ${key} NORMAL`);
    expect(await events.next(1500)).toBe(`updated ${key} NORMAL`); // the interval refresh
    state = 'DRAINING';
    await reg.refresh();
    await eventually(() => expect(view.get(key)?.heartbeat.state).toBe('DRAINING'), { timeoutMs: 1000 });
    expect(view.list().map((m) => m.key)).toEqual([key]);
    expect(view.get(key)?.sessionId).toBe(memberSession.sessionId);

    // An operator deletes the node: it is registered again at once.
    const reRegistered = new Promise((resolve) => reg.once('registered', resolve));
    await watcherSession.remove(paths.member('master', key));
    await reRegistered;
    await eventually(() => expect(view.get(key)).toBeDefined());

    await reg.stop();
    await eventually(() => expect(view.get(key)).toBeUndefined());
    const seen = [...events.pending()];
    expect(seen.at(-1)).toBe(`removed ${key}`);
    view.stop();
  });

  it('beforeRegister can veto a registration (a failed-over incarnation must not come back)', async () => {
    const connect = await zkChroot({ connectString: zkConnect }, 'membership-veto');
    const session = await openSession(connect);
    const reg = new MemberRegistration(session, paths, {
      role: 'master',
      nodeKey: '127.0.0.1:7400_1',
      heartbeat: () => masterHeartbeat(7400),
      beforeRegister: async () => {
        throw new Error('failed over');
      },
    });
    await expect(reg.start()).rejects.toThrow('failed over');
    expect(await session.exists(paths.member('master', '127.0.0.1:7400_1'))).toBeUndefined();
    await reg.stop();
  });
});
