import { withDefaults } from '@sched/core';
import { describe, expect, test } from 'vitest';

interface Options {
  name: string;
  batchSize?: number;
  mode?: 'fast' | 'safe';
  onDone?: () => void;
}

const DEFAULTS = { batchSize: 500, mode: 'safe' } as const satisfies Required<
  Pick<Options, 'batchSize' | 'mode'>
>;

/** As in a component: the options are typed as its options interface. */
const resolve = (given: Options) => withDefaults(given, DEFAULTS);

describe('withDefaults', () => {
  test('an option left out gets its default; one given wins', () => {
    expect(resolve({ name: 'a' })).toEqual({ name: 'a', batchSize: 500, mode: 'safe' });
    expect(resolve({ name: 'a', batchSize: 0, mode: 'fast' })).toEqual({
      name: 'a',
      batchSize: 0,
      mode: 'fast',
    });
  });

  test('an option passed as undefined keeps its default (a plain spread would erase it)', () => {
    expect(resolve({ name: 'a', batchSize: undefined }).batchSize).toBe(500);
  });

  test('the options without a default pass through as they are', () => {
    const onDone = () => {};
    const resolved = resolve({ name: 'a', onDone });
    expect(resolved.onDone).toBe(onDone);
    // Typed as the option's type, not the default's literal: another value may be given.
    const size: number = resolved.batchSize;
    expect(size).toBe(500);
  });

  test('the defaults object is not modified', () => {
    resolve({ name: 'a', batchSize: 1 });
    expect(DEFAULTS).toEqual({ batchSize: 500, mode: 'safe' });
  });
});
