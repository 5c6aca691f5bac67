import { ownsSchedule, planFire, slotOf } from '@sched/master';
import { CronSchedule } from '@sched/store';
import { describe, expect, it } from 'vitest';

const row = (misfire: 'skip' | 'fire-once-now' | 'fire-all', maxCatchUp = 100) => ({
  id: 7,
  revision: 3,
  misfire,
  misfireThresholdMs: 5000,
  maxCatchUp,
});
const everySecond = new CronSchedule('* * * * * *');
const T = Date.parse('2026-01-01T00:00:00Z');

describe('planFire', () => {
  it('fires on time and advances to the next fire after the fire time (catch-up one by one)', () => {
    const p = planFire(row('skip'), everySecond, T, T + 4_000);
    expect(p.misfired).toBe(false);
    expect(p.fires).toEqual([{ scheduleId: 7, fireTimeMs: T, trigger: 'schedule' }]);
    expect(p.advance).toEqual({ scheduleId: 7, expectedMs: T, revision: 3, nextMs: T + 1000 });
  });
  it('skip: a late fire makes no run and moves past now', () => {
    const p = planFire(row('skip'), everySecond, T, T + 10_500);
    expect(p.misfired).toBe(true);
    expect(p.fires).toEqual([]);
    expect(p.advance.nextMs).toBe(T + 11_000);
  });
  it('fire-once-now: one run, for the most recent missed fire time', () => {
    const p = planFire(row('fire-once-now'), everySecond, T, T + 10_500);
    expect(p.fires).toEqual([{ scheduleId: 7, fireTimeMs: T + 10_000, trigger: 'misfire' }]);
    expect(p.dropped).toBeGreaterThan(0);
  });
  it('fire-all: every missed fire up to the bound, the most recent ones', () => {
    const all = planFire(row('fire-all', 100), everySecond, T, T + 10_500);
    expect(all.fires.map((f) => f.fireTimeMs - T)).toEqual([
      0, 1000, 2000, 3000, 4000, 5000, 6000, 7000, 8000, 9000, 10000,
    ]);
    const bounded = planFire(row('fire-all', 3), everySecond, T, T + 10_500);
    expect(bounded.fires.map((f) => f.fireTimeMs - T)).toEqual([8000, 9000, 10000]);
    expect(bounded.advance.nextMs).toBe(T + 11_000);
  });
});

describe('slot assignment', () => {
  it('sorts the live list and maps ids by modulo', () => {
    const live = ['m-c', 'm-a', 'm-b'];
    expect(slotOf('m-a', live)).toEqual({ slot: 0, slotCount: 3 });
    expect(slotOf('m-c', live)).toEqual({ slot: 2, slotCount: 3 });
    expect(slotOf('m-x', live)).toBeNull();
    const owners = [1, 2, 3, 4, 5, 6].map((id) => live.filter((m) => ownsSchedule(slotOf(m, live)!, id)));
    for (const o of owners) expect(o).toHaveLength(1);
  });
});
