// ZooKeeper credentials in the configuration (docs/security.md#zookeeper): `zk.auth` is
// `user:password` with a non-empty password, `zk.insecure` a boolean, and without either the
// daemons and sched-ctl refuse with a message naming SCHED_ZK_AUTH and --insecure-zk.
import { describe, expect, test } from 'vitest';
import {
  ConfigError,
  configWarnings,
  loadConfig,
  requireZkCredentials,
  zkInsecureWarning,
} from '../src/index.js';

const config = (env: Record<string, string>) => loadConfig({ env });

describe('zk.auth and zk.insecure', () => {
  test('zk.auth is user:password; the password may contain ":"; an empty one, or none, is refused without echoing the value', () => {
    expect(config({ SCHED_ZK_AUTH: 'sched:pa:ss' }).zk.auth).toBe('sched:pa:ss');
    for (const bad of ['sched:', 'sched', ':password', 'sch ed:password']) {
      let err: unknown;
      try {
        config({ SCHED_ZK_AUTH: bad });
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(ConfigError);
      expect((err as ConfigError).issues).toEqual([
        {
          path: 'zk.auth',
          source: 'SCHED_ZK_AUTH',
          message:
            'invalid value; accepted: digest credentials "user:password" (a user name without ":" or spaces, then a non-empty password)',
        },
      ]);
    }
  });

  test('zk.insecure: off by default, true/false (1/0, yes/no) from the environment, anything else refused', () => {
    expect(config({}).zk.insecure).toBeUndefined();
    expect(config({ SCHED_ZK_INSECURE: 'true' }).zk.insecure).toBe(true);
    expect(config({ SCHED_ZK_INSECURE: 'YES' }).zk.insecure).toBe(true);
    expect(config({ SCHED_ZK_INSECURE: 'false' }).zk.insecure).toBeUndefined();
    expect(config({ SCHED_ZK_INSECURE: '0' }).zk.insecure).toBeUndefined();
    expect(loadConfig({ env: {}, flags: { 'zk.insecure': true } }).zk.insecure).toBe(true);
    expect(() => config({ SCHED_ZK_INSECURE: 'maybe' })).toThrow(
      'SCHED_ZK_INSECURE (zk.insecure): invalid value "maybe"; accepted: true or false',
    );
  });

  test('without either, refused with a message naming SCHED_ZK_AUTH and --insecure-zk', () => {
    let err: unknown;
    try {
      requireZkCredentials(config({}));
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(ConfigError);
    const message = (err as Error).message;
    expect(message).toMatch(/^refusing to use ZooKeeper without credentials\n {2}- zk\.auth: not set; /);
    expect(message).toContain('SCHED_ZK_AUTH=user:password');
    expect(message).toContain('--insecure-zk or SCHED_ZK_INSECURE=true');
    expect(requireZkCredentials(config({ SCHED_ZK_AUTH: 'u:p' }))).toBe('digest');
    expect(requireZkCredentials(config({ SCHED_ZK_INSECURE: 'true' }))).toBe('insecure');
    expect(requireZkCredentials(config({ SCHED_ZK_AUTH: 'u:p', SCHED_ZK_INSECURE: 'true' }))).toBe('digest');
    expect(zkInsecureWarning('sched-worker')).toMatch(
      /^INSECURE: sched-worker runs without ZooKeeper credentials .*fake worker.*SCHED_ZK_AUTH/,
    );
  });

  test('warnings: a short password; insecure together with credentials', () => {
    const paths = (env: Record<string, string>) => configWarnings(config(env)).map((w) => w.path);
    expect(paths({ SCHED_ZK_AUTH: 'sched:short' })).toEqual(['zk.auth']);
    expect(paths({ SCHED_ZK_AUTH: 'sched:0123456789abcdef' })).toEqual([]);
    expect(paths({ SCHED_ZK_AUTH: 'sched:0123456789abcdef', SCHED_ZK_INSECURE: 'true' })).toEqual([
      'zk.insecure',
    ]);
    expect(paths({ SCHED_ZK_INSECURE: 'true' })).toEqual([]);
  });
});
