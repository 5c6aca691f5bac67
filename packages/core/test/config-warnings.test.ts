import { configWarnings, loadConfig, minimumSafeFailoverDelayMs } from '@sched/core';
import { describe, expect, test } from 'vitest';

describe('configWarnings', () => {
  test('a failover delay shorter than kill grace + watchdog tick + margin is flagged', () => {
    const config = loadConfig({
      env: {},
      flags: { 'failover.delay': '5s', 'worker.killGrace': '5s', 'zk.sessionTimeout': '9s' },
    });
    expect(minimumSafeFailoverDelayMs(config)).toBe(5_000 + 3_000 + 1_000);
    expect(configWarnings(config)).toEqual([
      {
        path: 'failover.delay',
        message:
          '5s is shorter than worker.killGrace (5s) + a third of zk.sessionTimeout (3s) + 1s; ' +
          "a partitioned worker's task may still be running when it is re-run elsewhere. Safe: at least 9s",
      },
    ]);
  });

  test('a long enough failover delay gives no warning', () => {
    const config = loadConfig({
      env: {},
      flags: { 'failover.delay': '9s', 'worker.killGrace': '5s', 'zk.sessionTimeout': '9s' },
    });
    expect(configWarnings(config)).toEqual([]);
  });
});
