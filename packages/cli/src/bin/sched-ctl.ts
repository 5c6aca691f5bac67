#!/usr/bin/env node
import { runCli } from '../common/run-cli.js';
import { ctlProgram } from '../ctl/ctl-program.js';

await runCli(ctlProgram());
// Nothing may keep a finished command alive (a socket in close, a ZooKeeper reconnect timer).
process.exit(process.exitCode ?? 0);
