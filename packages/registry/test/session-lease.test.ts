import { FakeClock } from '@sched/core';
import { describe, expect, it } from 'vitest';
import { SessionLease } from '../src/session-lease.js';
import type { SessionStatus } from '../src/session-status.js';
import { SessionWatchdog } from '../src/session-watchdog.js';
import { ManualTimers } from './support/manual-timers.js';

const T = 3000;

describe('SessionLease (pure state machine)', () => {
  it('connects on the first reply and measures the lease from the send time of the newest answered request', () => {
    const lease = new SessionLease(T);
    expect(lease.status.kind).toBe('CONNECTING');
    const t = lease.reply('s1', 100, 150);
    expect(t?.to).toEqual({ kind: 'CONNECTED', sessionId: 's1', generation: 1 });
    // Sent at 100: the server heard us no earlier, so the lease ends at 100 + T, not 150 + T.
    expect(lease.remainingMs(150)).toBe(100 + T - 150);
  });

  it('SUSPENDED at 2/3 T of silence, LOST at T, and a late reply of the dead session changes nothing', () => {
    const lease = new SessionLease(T);
    lease.reply('s1', 0, 0);
    expect(lease.tick(1999)).toBeUndefined();
    expect(lease.tick(2000)?.to).toEqual({
      kind: 'SUSPENDED',
      sessionId: 's1',
      generation: 1,
      reason: 'silent',
    });
    expect(lease.tick(2999)).toBeUndefined();
    expect(lease.tick(3000)?.to).toEqual({
      kind: 'LOST',
      sessionId: 's1',
      generation: 1,
      reason: 'lease-expired',
    });
    expect(lease.reply('s1', 2500, 3100)).toBeUndefined();
    expect(lease.status.kind).toBe('LOST');
    expect(lease.remainingMs(3100)).toBe(0);
  });

  it('recovers from SUSPENDED with a fresh reply of the same session (RECONNECTED, same generation)', () => {
    const lease = new SessionLease(T);
    lease.reply('s1', 0, 0);
    lease.disconnected(500);
    expect(lease.status).toMatchObject({ kind: 'SUSPENDED', reason: 'disconnected' });
    expect(lease.reply('s1', 900, 950)?.to).toEqual({
      kind: 'RECONNECTED',
      sessionId: 's1',
      generation: 1,
      newSession: false,
    });
  });

  it('an old request answered during a silent suspension does not end it', () => {
    const lease = new SessionLease(T);
    lease.reply('s1', 0, 0);
    lease.tick(2100); // SUSPENDED(silent)
    // sent at 50, answered at 2200: silence is still 2150 >= 2/3 T
    expect(lease.reply('s1', 50, 2200)).toBeUndefined();
    expect(lease.status.kind).toBe('SUSPENDED');
  });

  it('a reply read after the lease ran out yields LOST, not RECONNECTED', () => {
    const lease = new SessionLease(T);
    lease.reply('s1', 0, 0);
    lease.disconnected(10);
    expect(lease.reply('s1', 0, 3500)?.to.kind).toBe('LOST');
  });

  it('EXPIRED from the server is LOST at once; a new session then is RECONNECTED(newSession) with generation 2', () => {
    const lease = new SessionLease(T);
    lease.reply('s1', 0, 0);
    lease.disconnected(100);
    expect(lease.expired(200)?.to).toEqual({
      kind: 'LOST',
      sessionId: 's1',
      generation: 1,
      reason: 'expired',
    });
    expect(lease.reply('s2', 300, 310)?.to).toEqual({
      kind: 'RECONNECTED',
      sessionId: 's2',
      generation: 2,
      newSession: true,
    });
    expect(lease.remainingMs(310)).toBe(300 + T - 310);
  });

  it('CLOSED is final', () => {
    const lease = new SessionLease(T);
    lease.reply('s1', 0, 0);
    expect(lease.close(5)?.to.kind).toBe('CLOSED');
    expect(lease.reply('s1', 6, 7)).toBeUndefined();
    expect(lease.tick(1e9)).toBeUndefined();
    expect(lease.close(8)).toBeUndefined();
  });
});

describe('SessionWatchdog (fake clock, fake timers, scripted probe)', () => {
  function setup() {
    const clock = new FakeClock();
    const timers = new ManualTimers(clock);
    const statuses: SessionStatus[] = [];
    let answer = true;
    let probes = 0;
    const pendingProbes: (() => void)[] = [];
    const watchdog = new SessionWatchdog({
      clock,
      timers,
      sessionTimeoutMs: T,
      link: {
        probe: () => {
          probes++;
          const sentAt = clock.monotonic();
          if (!answer) return new Promise(() => {}); // black hole: never answered
          return new Promise((resolve) => pendingProbes.push(() => resolve({ sessionId: 's1', sentAt })));
        },
      },
      onTransition: (t) => statuses.push(t.to),
    });
    /** Answers outstanding probes after `rtt` ms and lets the promise callbacks run. */
    const answerProbes = async (rtt = 5) => {
      timers.advance(rtt);
      for (const p of pendingProbes.splice(0)) p();
      await Promise.resolve();
      await Promise.resolve();
    };
    return {
      clock,
      timers,
      watchdog,
      statuses,
      answerProbes,
      blackhole: () => {
        answer = false;
      },
      probes: () => probes,
    };
  }

  async function run(f: ReturnType<typeof setup>, ms: number, step = 50) {
    for (let t = 0; t < ms; t += step) {
      f.timers.advance(step);
      await f.answerProbes(0);
    }
  }

  it('probes every T/3 and stays CONNECTED while probes are answered', async () => {
    const f = setup();
    f.watchdog.start();
    await f.answerProbes();
    expect(f.statuses.map((s) => s.kind)).toEqual(['CONNECTED']);
    await run(f, 10 * T);
    expect(f.statuses.map((s) => s.kind)).toEqual(['CONNECTED']);
    // One probe at start plus one per T/3.
    expect(f.probes()).toBeGreaterThanOrEqual(30);
    expect(f.probes()).toBeLessThanOrEqual(32);
  });

  it('black hole: SUSPENDED within 2/3 T + one tick of the last answered probe, LOST at T, exactly once each', async () => {
    const f = setup();
    f.watchdog.start();
    await f.answerProbes(0);
    await run(f, 1000);
    const lastContact = f.watchdog.lastContactAt;
    f.blackhole();
    const suspendedAt: number[] = [];
    const lostAt: number[] = [];
    for (let t = 0; t < 2 * T; t += 10) {
      const before = f.statuses.length;
      f.timers.advance(10);
      await f.answerProbes(0);
      for (const s of f.statuses.slice(before)) {
        if (s.kind === 'SUSPENDED') suspendedAt.push(f.clock.monotonic());
        if (s.kind === 'LOST') lostAt.push(f.clock.monotonic());
      }
    }
    expect(suspendedAt).toHaveLength(1);
    expect(lostAt).toHaveLength(1);
    expect(suspendedAt[0]).toBeGreaterThanOrEqual(lastContact + (2 * T) / 3);
    expect(suspendedAt[0]).toBeLessThanOrEqual(lastContact + (2 * T) / 3 + 10);
    expect(lostAt[0]).toBeGreaterThanOrEqual(lastContact + T);
    expect(lostAt[0]).toBeLessThanOrEqual(lastContact + T + 10);
    expect(f.statuses.map((s) => s.kind)).toEqual(['CONNECTED', 'SUSPENDED', 'LOST']);
  });

  it('a paused process (time jumps, no timer ran) sees LOST the moment it asks for the lease', async () => {
    const f = setup();
    f.watchdog.start();
    await f.answerProbes(0);
    // Jump the clock without firing timers: what SIGSTOP does to a process.
    f.clock.advance(T + 1);
    expect(f.watchdog.remainingMs()).toBeLessThanOrEqual(0);
    expect(f.statuses.map((s) => s.kind)).toEqual(['CONNECTED', 'LOST']);
  });

  it('disconnect then reply: SUSPENDED(disconnected) then RECONNECTED on the next probe answer', async () => {
    const f = setup();
    f.watchdog.start();
    await f.answerProbes(0);
    f.watchdog.disconnected();
    expect(f.statuses.at(-1)).toMatchObject({ kind: 'SUSPENDED', reason: 'disconnected' });
    f.watchdog.probeNow();
    await f.answerProbes(5);
    expect(f.statuses.at(-1)).toMatchObject({ kind: 'RECONNECTED', newSession: false });
  });

  it('stop(true) closes and leaves no timer behind', async () => {
    const f = setup();
    f.watchdog.start();
    await f.answerProbes(0);
    f.watchdog.stop(true);
    expect(f.statuses.at(-1)?.kind).toBe('CLOSED');
    expect(f.timers.size).toBe(0);
  });
});
