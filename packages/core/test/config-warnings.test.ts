import {
  configWarnings,
  grantedSessionTimeoutWarnings,
  loadConfig,
  minimumSafeFailoverDelayMs,
} from '@sched/core';
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

  test('PostgreSQL timeouts that defeat each other are flagged', () => {
    const config = loadConfig({
      env: {},
      flags: {
        'db.queryTimeout': '30s',
        'db.statementTimeout': '60s',
        'db.lockTimeout': '10s',
        'db.idleInTransactionTimeout': '15s',
      },
    });
    expect(configWarnings(config).map((w) => w.path)).toEqual(['db.queryTimeout', 'db.lockTimeout']);
    const off = loadConfig({
      env: {},
      flags: { 'db.queryTimeout': '0', 'db.idleInTransactionTimeout': '0' },
    });
    expect(configWarnings(off)).toEqual([]);
  });

  test('the defaults are safe', () => {
    expect(configWarnings(loadConfig({ env: {} }))).toEqual([]);
  });
});

describe('grantedSessionTimeoutWarnings', () => {
  test('nothing when ZooKeeper granted what was asked', () => {
    expect(grantedSessionTimeoutWarnings(loadConfig({ env: {} }), 10_000)).toEqual([]);
  });

  test('a different grant is reported with both values; the failover delay is checked against the granted one', () => {
    const config = loadConfig({ env: {}, flags: { 'zk.sessionTimeout': '6s', 'failover.delay': '3s' } });
    expect(configWarnings(config)).toEqual([]);
    expect(grantedSessionTimeoutWarnings(config, 2_000)).toEqual([
      {
        path: 'zk.sessionTimeout',
        message:
          "requested 6s, but ZooKeeper granted 2s (the server's minSessionTimeout/maxSessionTimeout); " +
          "the session lease and the task supervisor use 2s. Set zk.sessionTimeout within the server's bounds",
      },
    ]);
    const longer = grantedSessionTimeoutWarnings(config, 9_000);
    expect(longer.map((w) => w.path)).toEqual(['zk.sessionTimeout', 'failover.delay']);
    expect(longer[1]?.message).toContain('Safe: at least 4s');
  });
});
