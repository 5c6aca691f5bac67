import { FakeClock, sleep, systemClock } from '@sched/core';
import { describe, expect, test } from 'vitest';

describe('FakeClock', () => {
  test('starts where told and moves only when told', () => {
    const clock = new FakeClock({ now: 1_000_000, monotonic: 50 });
    expect(clock.now()).toBe(1_000_000);
    expect(clock.monotonic()).toBe(50);
    expect(clock.now()).toBe(1_000_000);
  });

  test('advance moves wall and monotonic time together', () => {
    const clock = new FakeClock({ now: 1_000_000 });
    const mono = clock.monotonic();
    clock.advance(2_500);
    expect(clock.now()).toBe(1_002_500);
    expect(clock.monotonic()).toBe(mono + 2_500);
  });

  test('setNow jumps the wall clock, backwards too, without touching monotonic time', () => {
    const clock = new FakeClock({ now: 1_000_000, monotonic: 10 });
    clock.setNow(500);
    expect(clock.now()).toBe(500);
    expect(clock.monotonic()).toBe(10);
    clock.setNow(2_000_000);
    expect(clock.now()).toBe(2_000_000);
    expect(clock.monotonic()).toBe(10);
  });

  test('refuses to go back in monotonic time', () => {
    const clock = new FakeClock();
    expect(() => clock.advance(-1)).toThrow(RangeError);
    expect(() => clock.advance(Number.NaN)).toThrow(RangeError);
  });
});

describe('systemClock', () => {
  test('wall time is epoch ms and monotonic time moves forward across a real sleep', async () => {
    const wallBefore = Date.now();
    expect(Math.abs(systemClock.now() - wallBefore)).toBeLessThan(1_000);
    const before = systemClock.monotonic();
    await sleep(30);
    const elapsed = systemClock.monotonic() - before;
    // Lower bound only: timers never fire early by more than rounding, but a busy machine can be late.
    expect(elapsed).toBeGreaterThanOrEqual(25);
  });
});
