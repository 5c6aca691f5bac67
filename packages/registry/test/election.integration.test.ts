import { performance } from 'node:perf_hooks';
import { eventually, FaultProxy, sharedZooKeeper, timing, zkChroot } from '@sched/testkit';
import { beforeAll, describe, expect, it } from 'vitest';
import { LeaderElection, type LeadershipTerm } from '../src/leader-election.js';
import { RegistryPaths } from '../src/registry-paths.js';
import type { ZkSession } from '../src/zk-session.js';
import { openSession } from './support/zk.js';

// Leader election with 5 candidates, hand-over, no herd, and no overlap of
// terms when the leader is black-holed.

let serverAddress: { host: string; port: number };

beforeAll(async () => {
  const zk = await sharedZooKeeper();
  serverAddress = { host: zk.host, port: zk.port };
});

interface TermRecord {
  who: string;
  token: bigint;
  startedAt: number;
  endedAt: number | undefined;
  reason?: string;
}

/** Every term of every candidate, on the one monotonic clock of this process. */
class TermLog {
  readonly terms: TermRecord[] = [];

  track(who: string, election: LeaderElection): void {
    election.on('elected', (t: LeadershipTerm) => {
      this.terms.push({ who, token: t.token, startedAt: t.startedAt, endedAt: undefined });
    });
    election.on('revoked', (t, reason, endedAt) => {
      const rec = this.terms.find((r) => r.who === who && r.token === t.token);
      if (rec) {
        rec.endedAt = endedAt;
        rec.reason = reason;
      }
    });
  }

  leadersNow(): string[] {
    return this.terms.filter((t) => t.endedAt === undefined).map((t) => t.who);
  }

  /** Terms never overlap and fencing tokens strictly increase in start order. */
  assertSerial(): void {
    const sorted = [...this.terms].sort((a, b) => a.startedAt - b.startedAt);
    for (let i = 1; i < sorted.length; i++) {
      const prev = sorted[i - 1] as TermRecord;
      const next = sorted[i] as TermRecord;
      expect(prev.endedAt, `term of ${prev.who} still open when ${next.who} started`).toBeDefined();
      expect(prev.endedAt as number).toBeLessThanOrEqual(next.startedAt);
      expect(next.token > prev.token, `token ${next.token} after ${prev.token}`).toBe(true);
    }
  }
}

async function candidate(
  connectString: string,
  paths: RegistryPaths,
  who: string,
  log: TermLog,
  opts: { sessionTimeoutMs?: number; endOn?: 'suspended' | 'lost' } = {},
): Promise<{ session: ZkSession; election: LeaderElection }> {
  const session = await openSession(connectString, { sessionTimeoutMs: opts.sessionTimeoutMs ?? 4000 });
  const election = new LeaderElection(session, paths, { nodeKey: who, endOn: opts.endOn });
  log.track(who, election);
  election.start();
  return { session, election };
}

describe('LeaderElection', () => {
  it('5 candidates: exactly one leader; closing it hands over to the next, and only the successor is notified', async () => {
    const zk = await sharedZooKeeper();
    const connect = await zkChroot(zk, 'election-five');
    const paths = new RegistryPaths('/sched');
    const log = new TermLog();
    const all: { session: ZkSession; election: LeaderElection }[] = [];
    // Started one after another so that the queue order is known: c0 < c1 < … < c4.
    for (let i = 0; i < 5; i++) {
      const c = await candidate(connect, paths, `c${i}`, log);
      all.push(c);
      await eventually(() => expect(c.election.candidateNode).toBeDefined());
    }
    await eventually(() => expect(log.leadersNow()).toEqual(['c0']));
    await timing.sleep(500);
    expect(log.leadersNow()).toEqual(['c0']);
    expect(all.filter((c) => c.election.isLeader()).length).toBe(1);
    expect(all.map((c) => c.election.predecessorNotifications)).toEqual([0, 0, 0, 0, 0]);

    const closedAt = performance.now();
    await (all[0] as { election: LeaderElection }).election.close();
    await eventually(() => expect(log.leadersNow()).toEqual(['c1']));
    const handover = (log.terms.find((t) => t.who === 'c1')?.startedAt as number) - closedAt;
    expect(handover).toBeLessThan(1000);
    await timing.sleep(500);
    // No herd: one watch fired in the whole group, the successor's.
    expect(all.map((c) => c.election.predecessorNotifications)).toEqual([0, 1, 0, 0, 0]);

    // Closing a non-leader in the middle re-links the queue without waking the leader.
    await (all[2] as { election: LeaderElection }).election.close();
    await eventually(() => expect(all[3]?.election.predecessorNotifications).toBe(1));
    expect(log.leadersNow()).toEqual(['c1']);

    await (all[1] as { election: LeaderElection }).election.close();
    await eventually(() => expect(log.leadersNow()).toEqual(['c3']));
    log.assertSerial();
    for (const c of all) await c.election.close();
  });

  for (const endOn of ['suspended', 'lost'] as const) {
    it(`black-holed leader (endOn=${endOn}): leadership ends no later than its LOST, the next leader starts only after the server expired the old session; terms never overlap and tokens increase`, async () => {
      const zk = await sharedZooKeeper();
      const connect = await zkChroot(zk, `election-blackhole-${endOn}`);
      const chroot = connect.slice(connect.indexOf('/'));
      const paths = new RegistryPaths('/sched');
      const log = new TermLog();
      const T = 3000;
      const proxy = await FaultProxy.start(serverAddress);
      const leader = await candidate(`${proxy.address}${chroot}`, paths, 'victim', log, {
        sessionTimeoutMs: T,
        endOn,
      });
      await eventually(() => expect(log.leadersNow()).toEqual(['victim']));
      const others: { session: ZkSession; election: LeaderElection }[] = [];
      for (let i = 0; i < 4; i++)
        others.push(await candidate(connect, paths, `o${i}`, log, { sessionTimeoutMs: 4000 }));
      await eventually(() => expect(others.every((o) => o.election.candidateNode !== undefined)).toBe(true));

      const observer = await openSession(connect, { sessionTimeoutMs: 10_000 });
      const victimNode = leader.election.candidateNode as string;
      let nodeDeletedAt = 0;
      const watchDeletion = async (): Promise<void> => {
        const st = await observer.exists(victimNode, (e) => {
          if (e.type === 'deleted') nodeDeletedAt = performance.now();
          else void watchDeletion();
        });
        if (!st && nodeDeletedAt === 0) nodeDeletedAt = performance.now();
      };
      await watchDeletion();
      let lostAt = 0;
      let suspendedAt = 0;
      leader.session.on('status', (s) => {
        if (s.kind === 'LOST' && lostAt === 0) lostAt = performance.now();
        if (s.kind === 'SUSPENDED' && suspendedAt === 0) suspendedAt = performance.now();
      });

      proxy.setMode('blackhole');
      await eventually(() => expect(log.leadersNow()).toEqual(['o0']), { timeoutMs: timing.forWaiting() });
      const victimTerm = log.terms.find((t) => t.who === 'victim') as TermRecord;
      const nextTerm = log.terms.find((t) => t.who === 'o0') as TermRecord;
      expect(lostAt).toBeGreaterThan(0);
      expect(victimTerm.endedAt).toBeDefined();
      // Ends no later than LOST (with endOn=suspended: at SUSPENDED).
      expect(victimTerm.endedAt as number).toBeLessThanOrEqual(lostAt);
      if (endOn === 'suspended') {
        expect(victimTerm.reason).toBe('suspended');
        expect(victimTerm.endedAt as number).toBeLessThanOrEqual(suspendedAt);
      } else {
        expect(victimTerm.reason).toBe('lost');
      }
      // The server expired the old session (its node went), and only then the next term began.
      expect(nodeDeletedAt).toBeGreaterThan(0);
      expect(nodeDeletedAt).toBeGreaterThanOrEqual(lostAt);
      expect(nextTerm.startedAt).toBeGreaterThanOrEqual(nodeDeletedAt);
      expect(nextTerm.startedAt).toBeGreaterThan(victimTerm.endedAt as number);

      // Healing: the old leader comes back with a new session as an ordinary candidate.
      proxy.setMode('pass');
      await eventually(() => expect(leader.session.generation).toBe(2));
      await eventually(() => expect(leader.election.candidateNode).toBeDefined());
      await timing.sleep(500);
      expect(log.leadersNow()).toEqual(['o0']);
      log.assertSerial();
      for (const c of [leader, ...others]) await c.election.close();
    });
  }

  it('onLeadership: the term signal aborts on SUSPENDED and check() refuses afterwards', async () => {
    const zk = await sharedZooKeeper();
    const connect = await zkChroot(zk, 'election-callback');
    const chroot = connect.slice(connect.indexOf('/'));
    const proxy = await FaultProxy.start(serverAddress);
    const session = await openSession(`${proxy.address}${chroot}`, { sessionTimeoutMs: 3000 });
    const events: string[] = [];
    let checkAfter: unknown;
    const election = new LeaderElection(session, new RegistryPaths('/sched'), {
      nodeKey: 'cb',
      onLeadership: async (term) => {
        events.push('start');
        term.check();
        await new Promise<void>((resolve) => term.signal.addEventListener('abort', () => resolve()));
        events.push(`aborted:${(term.signal.reason as { reason: string }).reason}`);
        try {
          term.check();
        } catch (err) {
          checkAfter = err;
        }
      },
    });
    election.start();
    await eventually(() => expect(events).toEqual(['start']));
    proxy.setMode('blackhole');
    await eventually(() => expect(events).toEqual(['start', 'aborted:suspended']));
    expect(checkAfter).toMatchObject({ code: 'LEADERSHIP_LOST' });
    proxy.setMode('pass');
    await election.close();
  });
});
