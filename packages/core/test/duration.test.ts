import { durationSchema, formatDuration, parseDuration, SchedError } from '@sched/core';
import { describe, expect, test } from 'vitest';

describe('parseDuration', () => {
  test.each([
    [0, 0],
    [1500, 1500],
    ['1500', 1500],
    ['250ms', 250],
    ['10s', 10_000],
    ['1.5s', 1_500],
    ['5m', 300_000],
    ['1h', 3_600_000],
    ['7d', 604_800_000],
    ['1m30s', 90_000],
    ['1h30m15s500ms', 5_415_500],
    [' 10s ', 10_000],
  ])('%j is %d ms', (input, ms) => {
    expect(parseDuration(input)).toBe(ms);
  });

  test.each(['10x', '', 's', '-5s', '1.5', '1s 5', '10 s', 'ten', '1.0001ms', '5S', '1m30'])(
    'rejects %j with a clear message',
    (input) => {
      const err = (() => {
        try {
          parseDuration(input);
        } catch (e) {
          return e;
        }
        throw new Error(`parseDuration(${JSON.stringify(input)}) did not throw`);
      })();
      expect(err).toBeInstanceOf(SchedError);
      expect((err as SchedError).code).toBe('DURATION_INVALID');
      expect((err as SchedError).retriable).toBe(false);
      expect((err as Error).message).toContain(`invalid duration ${JSON.stringify(input)}`);
      expect((err as Error).message).toContain(
        'accepted: a number of milliseconds or a string like 500ms, 10s, 5m, 1h, 7d',
      );
    },
  );

  test('rejects negative and fractional numbers of milliseconds', () => {
    expect(() => parseDuration(-1)).toThrow(/invalid duration -1/);
    expect(() => parseDuration(1.5)).toThrow(/invalid duration 1.5/);
    expect(() => parseDuration(Number.NaN)).toThrow(/invalid duration NaN/);
  });

  test('names the path when given', () => {
    expect(() => parseDuration('10x', 'tasks[0].timeout')).toThrow(
      'tasks[0].timeout: invalid duration "10x"; accepted: a number of milliseconds or a string like 500ms, 10s, 5m, 1h, 7d',
    );
  });
});

describe('formatDuration', () => {
  test.each([
    [0, '0ms'],
    [250, '250ms'],
    [1500, '1s500ms'],
    [90_000, '1m30s'],
    [3_600_000, '1h'],
    [604_800_000, '7d'],
    [90_061_001, '1d1h1m1s1ms'],
  ])('%d ms is %s', (ms, text) => {
    expect(formatDuration(ms)).toBe(text);
  });

  test('round-trips through parseDuration', () => {
    for (const ms of [0, 1, 999, 1000, 59_999, 61_000, 3_599_999, 86_400_001, 1_234_567_890]) {
      expect(parseDuration(formatDuration(ms))).toBe(ms);
    }
  });
});

describe('durationSchema', () => {
  test('compiles strings and numbers to milliseconds', () => {
    expect(durationSchema.parse('1m30s')).toBe(90_000);
    expect(durationSchema.parse(42)).toBe(42);
  });

  test('reports bad input as a zod issue with the same message', () => {
    const result = durationSchema.safeParse('10x');
    expect(result.success).toBe(false);
    expect(result.error?.issues[0]?.message).toBe(
      'invalid duration "10x"; accepted: a number of milliseconds or a string like 500ms, 10s, 5m, 1h, 7d',
    );
    expect(durationSchema.safeParse(true).error?.issues[0]?.message).toMatch(/^invalid duration true;/);
  });
});
