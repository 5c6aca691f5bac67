import { scrubSecretEnvironment } from '@sched/core';
import { MasterNode } from '@sched/master';
import type { Command } from 'commander';
import { addConfigOptions, configFromOptions } from '../common/config-flags.js';
import { daemonLogger, runUntilSignalled } from '../common/daemon.js';

export function masterStartCommand(program: Command): void {
  const start = program
    .command('start')
    .description(
      'Start a master: joins ZooKeeper, migrates PostgreSQL, fires schedules, drives runs. SIGTERM stops it gracefully.',
    );
  addConfigOptions(start).action(async (opts: Record<string, unknown>) => {
    const config = configFromOptions(opts);
    // The secrets are in `config` now: no child process (task, supervisor) may inherit them
    // (docs/security.md#secrets).
    scrubSecretEnvironment();
    const logger = daemonLogger('sched-master', config);
    const hooks = (process.env.SCHED_TEST_HOOKS ?? '').split(',');
    const node = await MasterNode.start({
      config,
      logger,
      crashBeforeFailoverRecord: hooks.includes('crash-before-failover-record'),
    });
    process.stdout.write(
      `sched-master ${node.key} listening on ${node.listenAddress}${node.address === node.listenAddress ? '' : ` (advertised as ${node.address})`}, joined ZooKeeper ${config.zk.connect} root ${config.zk.root}\n`,
    );
    const code = await runUntilSignalled(
      'sched-master',
      { stop: () => node.stop(), ended: node.ended },
      logger,
    );
    process.exitCode = code;
    // Anything still holding the event loop (a socket in close) must not keep a stopped daemon alive.
    setTimeout(() => process.exit(code), 2_000).unref();
  });
}
