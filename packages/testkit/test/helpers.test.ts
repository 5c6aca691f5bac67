import { describe, expect, it } from 'vitest';
import { EventQueue, eventually, makeTiming, timing } from '../src/index.js';

describe('timing', () => {
  it('derives every duration from one base', () => {
    const t = makeTiming(1000);
    expect(t.base).toBe(1000);
    expect(t.forWaiting()).toBe(10_000);
    expect(t.forSleeping()).toBe(250);
    expect(t.session()).toBe(2000);
    const doubled = t.multiple(2);
    expect(doubled.forWaiting()).toBe(20_000);
    expect(doubled.forSleeping()).toBe(500);
  });

  it('rejects a nonsensical base', () => {
    expect(() => makeTiming(0)).toThrow(/positive number of milliseconds, got 0/);
    expect(() => makeTiming(Number.NaN)).toThrow(/positive/);
  });

  it('uses SCHED_TEST_TIMING_BASE or 1000 ms', () => {
    expect(timing.base).toBe(Number(process.env.SCHED_TEST_TIMING_BASE ?? 1000));
  });
});

describe('eventually', () => {
  it('retries until the assertion holds and returns its value', async () => {
    let calls = 0;
    const value = await eventually(
      () => {
        calls += 1;
        if (calls < 3) throw new Error(`not yet (${calls})`);
        return 'done';
      },
      { intervalMs: 5 },
    );
    expect(value).toBe('done');
    expect(calls).toBe(3);
  });

  it('gives up after the timeout with the last failure', async () => {
    const started = performance.now();
    await expect(
      eventually(
        () => {
          throw new Error('still wrong');
        },
        { timeoutMs: 200, intervalMs: 20 },
      ),
    ).rejects.toThrow(/still failing after 200 ms .*still wrong/);
    expect(performance.now() - started).toBeGreaterThanOrEqual(150);
  });
});

describe('eventually with an attempt that never settles', () => {
  it('still gives up at the deadline', async () => {
    const started = performance.now();
    await expect(eventually(() => new Promise<never>(() => undefined), { timeoutMs: 200 })).rejects.toThrow(
      /still failing after 200 ms \(1 attempts\): attempt 1 did not settle before the deadline/,
    );
    expect(performance.now() - started).toBeLessThan(2000);
  });
});

describe('EventQueue', () => {
  it('returns events in order, buffered or awaited', async () => {
    const queue = new EventQueue<string>();
    queue.push('a');
    setTimeout(() => queue.push('b'), 20);
    expect(await queue.next(1000)).toBe('a');
    expect(await queue.next(1000)).toBe('b');
  });

  it('next times out with the history in the message', async () => {
    const queue = new EventQueue<string>();
    queue.push('only');
    await queue.next();
    await expect(queue.next(50)).rejects.toThrow(/no event within 50 ms; events so far: \['only'\]/);
  });

  it('expectSequence accepts the exact sequence (deep equality)', async () => {
    const queue = new EventQueue<{ state: string }>();
    setTimeout(() => {
      queue.push({ state: 'CONNECTED' });
      queue.push({ state: 'SUSPENDED' });
    }, 10);
    await queue.expectSequence([{ state: 'CONNECTED' }, { state: 'SUSPENDED' }], 1000);
  });

  it('expectSequence rejects a wrong event and a missing one', async () => {
    const queue = new EventQueue<string>();
    queue.push('CONNECTED');
    queue.push('LOST');
    await expect(queue.expectSequence(['CONNECTED', 'SUSPENDED'], 100)).rejects.toThrow(
      /event #2 was \['LOST'\], expected \['SUSPENDED'\]/,
    );
    queue.push('CONNECTED');
    await expect(queue.expectSequence(['CONNECTED', 'RECONNECTED'], 50)).rejects.toThrow(
      /got only \['CONNECTED'\] \(event #2, \['RECONNECTED'\], did not arrive within 50 ms\)/,
    );
  });

  it('expectQuiet fails on an event pending or arriving during the window', async () => {
    const queue = new EventQueue<string>();
    await queue.expectQuiet(30);
    setTimeout(() => queue.push('late'), 10);
    await expect(queue.expectQuiet(100)).rejects.toThrow(/expected no events for 100 ms, got \['late'\]/);
    queue.push('pending');
    await expect(queue.expectQuiet(10)).rejects.toThrow(/got \['pending'\]/);
  });
});
