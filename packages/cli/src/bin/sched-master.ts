#!/usr/bin/env node
import { SCHED_VERSION } from '@sched/core';
import { Command } from 'commander';
import { masterStartCommand } from '../commands/master-start.js';
import { runCli } from '../common/run-cli.js';

const program = new Command('sched-master')
  .description(
    'sched master daemon: fires schedules, owns and drives workflow runs, dispatches tasks to workers',
  )
  .version(SCHED_VERSION);
masterStartCommand(program);
await runCli(program);
