import type { SchedConfig } from './config-schema.js';
import { ConfigError } from './errors.js';

/**
 * ZooKeeper credentials are required (docs/security.md#zookeeper): a daemon or `sched-ctl` uses
 * ZooKeeper only with digest credentials (`zk.auth`, `SCHED_ZK_AUTH`), so every znode it creates
 * carries a digest ACL, or when told explicitly to run without them (`zk.insecure`,
 * `SCHED_ZK_INSECURE=true`, `--insecure-zk`), and then it says so loudly.
 */

export type ZkAccessMode = 'digest' | 'insecure';

/**
 * How a daemon or `sched-ctl` may use ZooKeeper: `digest` with `zk.auth`, `insecure` when
 * `zk.insecure` is set without it.
 * @throws ConfigError when neither is set, naming `SCHED_ZK_AUTH` and `--insecure-zk`.
 */
export function requireZkCredentials(config: Pick<SchedConfig, 'zk'>): ZkAccessMode {
  if (config.zk.auth) return 'digest';
  if (config.zk.insecure) return 'insecure';
  throw new ConfigError('refusing to use ZooKeeper without credentials', [
    {
      path: 'zk.auth',
      message:
        'not set; set SCHED_ZK_AUTH=user:password (or --zk-auth, or zk.auth in --config FILE) to the ' +
        "cluster's ZooKeeper credentials, so that every znode sched creates is protected by a digest ACL. " +
        'To run with an open ZooKeeper tree that anyone who reaches ZooKeeper can change (a fake worker, ' +
        'a fake failover record), say so explicitly: --insecure-zk or SCHED_ZK_INSECURE=true',
    },
  ]);
}

/** The warning a daemon (or `sched-ctl`) gives once when it runs with `zk.insecure` and no credentials. */
export function zkInsecureWarning(who: string): string {
  return (
    `INSECURE: ${who} runs without ZooKeeper credentials (--insecure-zk / SCHED_ZK_INSECURE=true): ` +
    'the znodes it creates are open to anyone who reaches ZooKeeper, who can register a fake worker ' +
    '(and receive dispatches with the cluster secret), a fake master, or write a failover record that ' +
    'makes a healthy node exit. Set SCHED_ZK_AUTH=user:password on every daemon and sched-ctl instead ' +
    '(docs/security.md#zookeeper)'
  );
}
