#!/usr/bin/env node
import { SCHED_VERSION } from '@sched/core';
import { Command } from 'commander';
import { workerStartCommand } from '../commands/worker-start.js';
import { runCli } from '../common/run-cli.js';

const program = new Command('sched-worker')
  .description(
    'sched worker daemon: runs tasks dispatched by masters as child processes and reports their results',
  )
  .version(SCHED_VERSION);
workerStartCommand(program);
await runCli(program);
