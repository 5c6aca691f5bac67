import { scrubSecretEnvironment } from '@sched/core';
import { WorkerNode } from '@sched/worker';
import type { Command } from 'commander';
import { addConfigOptions, configFromOptions } from '../common/config-flags.js';
import { daemonLogger, runUntilSignalled } from '../common/daemon.js';

/** Exit code of a worker that found its own FAILOVER_FINISH_NODES record (a zombie). */
const EXIT_FAILED_OVER = 3;

export function workerStartCommand(program: Command): void {
  const start = program
    .command('start')
    .description(
      'Start a worker: registers in ZooKeeper, runs dispatched tasks, reports results. SIGTERM drains it gracefully.',
    );
  addConfigOptions(start).action(async (opts: Record<string, unknown>) => {
    const config = configFromOptions(opts);
    // The secrets are in `config` now: no child process (task, supervisor) may inherit them
    // (docs/security.md#secrets).
    scrubSecretEnvironment();
    const logger = daemonLogger('sched-worker', config);
    const node = await WorkerNode.start({ config, logger });
    process.stdout.write(
      `sched-worker ${node.key} listening on ${node.listenAddress}${node.address === node.listenAddress ? '' : ` (advertised as ${node.address})`}, joined ZooKeeper ${config.zk.connect} root ${config.zk.root}\n`,
    );
    const failedOver = node.terminated.then(({ reason }) => {
      logger.error({ reason }, 'this worker incarnation was failed over; exiting so a fresh one can start');
      process.stderr.write(
        `sched-worker: ${reason}; exiting (a supervisor should start a fresh incarnation)\n`,
      );
      return EXIT_FAILED_OVER;
    });
    const code = await runUntilSignalled(
      'sched-worker',
      {
        stop: async () => {
          await node.drain();
          await node.stop();
        },
        ended: failedOver,
      },
      logger,
    );
    if (code === EXIT_FAILED_OVER) await node.stop().catch(() => {});
    process.exitCode = code;
    setTimeout(() => process.exit(code), 2_000).unref();
  });
}
