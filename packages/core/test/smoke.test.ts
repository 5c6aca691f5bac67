import { expect, test } from 'vitest';

test('placeholder replaced by the core package tests', () => {
  expect(1 + 1).toBe(2);
});
