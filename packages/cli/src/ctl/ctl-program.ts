import { SCHED_VERSION } from '@sched/core';
import { Command } from 'commander';
import { addConfigOptions } from '../common/config-flags.js';
import { clusterCommands } from './cluster-commands.js';
import { dbCommands } from './db-commands.js';
import { runCommands } from './run-commands.js';
import { taskCommands } from './task-commands.js';
import { workflowCommands } from './workflow-commands.js';
import { zkCommands } from './zk-commands.js';

/**
 * `sched-ctl`: the operator's tool (docs/cli.md). It finds a master through the registry (live
 * `{root}/masters` znodes) and uses its REST API; it reads ZooKeeper directly only for `zk` and
 * `cluster`, and PostgreSQL only for `db migrate` and `db prune`. Configured like the daemons (flags >
 * environment > `--config` file > `.sched-data/standalone.json` > defaults).
 */
export function ctlProgram(): Command {
  const program = new Command('sched-ctl')
    .description('Operate a sched cluster: inspect the registry, manage workflows and runs, read task logs')
    .version(SCHED_VERSION)
    .showHelpAfterError('(add --help for usage)')
    .option('--master <host:port>', 'call this master instead of finding one in the registry (SCHED_MASTER)')
    .option('--connect-timeout <duration>', 'give up connecting to ZooKeeper after this long', '5s')
    .option('--request-timeout <duration>', 'give up waiting for an answer after this long', '30s');
  addConfigOptions(program);
  clusterCommands(program);
  zkCommands(program);
  workflowCommands(program);
  runCommands(program);
  taskCommands(program);
  dbCommands(program);
  // Every level fails the same way (exit 2, no stack trace) on an unknown command or option.
  const override = (cmd: Command): void => {
    cmd.exitOverride();
    cmd.commands.forEach(override);
  };
  override(program);
  return program;
}
