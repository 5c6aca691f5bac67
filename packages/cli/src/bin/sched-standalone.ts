#!/usr/bin/env node
import { SCHED_VERSION } from '@sched/core';
import { Command } from 'commander';
import { runCli } from '../common/run-cli.js';
import { standaloneCommand } from '../standalone/standalone-command.js';

const program = new Command('sched-standalone')
  .description(
    'Run a whole sched cluster in one process: embedded ZooKeeper and PostgreSQL (child processes from the system installations, data under .sched-data/), a master and a worker. Ctrl-C stops everything.',
  )
  .version(SCHED_VERSION);
standaloneCommand(program);
await runCli(program);
