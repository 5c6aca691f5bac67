// ZooKeeper credentials on the command line and in the standalone file (docs/security.md#zookeeper):
// `--insecure-zk` is a value-less switch for zk.insecure on the daemons and sched-ctl, and
// sched-ctl takes `zkAuth` from .sched-data/standalone.json when SCHED_ZK_AUTH is unset.
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Command } from 'commander';
import { afterEach, describe, expect, test } from 'vitest';
import { addConfigOptions, configFromOptions } from '../src/common/config-flags.js';
import { loadCtlConfig } from '../src/ctl/ctl-config.js';
import { ctlProgram } from '../src/ctl/ctl-program.js';

const cwd = process.cwd();
afterEach(() => process.chdir(cwd));

function parse(args: string[]): Record<string, unknown> {
  const cmd = addConfigOptions(new Command('sched-worker').exitOverride());
  cmd.parse(['node', 'sched-worker', ...args]);
  return cmd.opts();
}

describe('--insecure-zk', () => {
  test('is a switch on the daemons: sets zk.insecure; absent, it stays unset', () => {
    expect(configFromOptions(parse(['--insecure-zk'])).zk.insecure).toBe(true);
    expect(configFromOptions(parse([])).zk.insecure).toBeUndefined();
    expect(configFromOptions(parse(['--zk-auth', 'sched:pw'])).zk.auth).toBe('sched:pw');
  });

  test('takes no value, and there is no derived --zk-insecure <value>', () => {
    const cmd = addConfigOptions(new Command('x'));
    const flags = cmd.options.map((o) => o.long);
    expect(flags).toContain('--insecure-zk');
    expect(flags).not.toContain('--zk-insecure');
    expect(cmd.options.find((o) => o.long === '--insecure-zk')?.required).toBe(false);
    expect(cmd.options.find((o) => o.long === '--insecure-zk')?.optional).toBe(false);
  });

  test('sched-ctl takes it before or after the command', () => {
    const program = ctlProgram();
    let seen: Record<string, unknown> | undefined;
    const ls = program.commands.find((c) => c.name() === 'zk')?.commands.find((c) => c.name() === 'ls');
    ls?.action(function (this: Command) {
      seen = this.optsWithGlobals();
    });
    program.parse(['node', 'sched-ctl', 'zk', 'ls', '--insecure-zk']);
    expect(loadCtlConfig(seen ?? {}, {}).config.zk.insecure).toBe(true);
    expect(loadCtlConfig({}, {}).config.zk.insecure).toBeUndefined();
  });
});

describe('.sched-data/standalone.json', () => {
  test('zkAuth reaches zk.auth unless SCHED_ZK_AUTH is set', () => {
    const dir = mkdtempSync(join(tmpdir(), 'sched-ctl-zkauth-'));
    mkdirSync(join(dir, '.sched-data'));
    writeFileSync(
      join(dir, '.sched-data', 'standalone.json'),
      JSON.stringify({ zk: '127.0.0.1:2181', zkAuth: 'sched:from-file' }),
    );
    process.chdir(dir);
    expect(loadCtlConfig({}, {}).config.zk.auth).toBe('sched:from-file');
    expect(loadCtlConfig({}, { SCHED_ZK_AUTH: 'sched:from-env' }).config.zk.auth).toBe('sched:from-env');
  });
});
