import { configWarnings, loadConfig, minimumSafeFailoverDelayMs } from '@sched/core';
import { describe, expect, test } from 'vitest';

describe('configWarnings', () => {
  test('a failover delay shorter than a watchdog tick + margin is flagged with the safe minimum', () => {
    const config = loadConfig({
      env: {},
      flags: { 'failover.delay': '3s', 'worker.killGrace': '5s', 'zk.sessionTimeout': '9s' },
    });
    expect(minimumSafeFailoverDelayMs(config)).toBe(3_000 + 1_000);
    expect(configWarnings(config)).toEqual([
      {
        path: 'failover.delay',
        message:
          '3s is shorter than a third of zk.sessionTimeout (3s) + 1s; ' +
          "a partitioned worker's task may still be running when it is re-run elsewhere. Safe: at least 4s",
      },
    ]);
  });

  test('the kill grace does not count: self-fencing kills with SIGKILL at once', () => {
    const config = loadConfig({
      env: {},
      flags: { 'failover.delay': '4s', 'worker.killGrace': '30s', 'zk.sessionTimeout': '9s' },
    });
    expect(configWarnings(config)).toEqual([]);
  });

  test('the defaults are safe', () => {
    expect(configWarnings(loadConfig({ env: {} }))).toEqual([]);
  });
});
