// Every sched-ctl command has --help and every listing has --json (docs/cli.md).
import type { Command } from 'commander';
import { describe, expect, test } from 'vitest';
import { ctlProgram } from '../src/ctl/ctl-program.js';

function leaves(cmd: Command, path: string[] = []): { path: string[]; cmd: Command }[] {
  if (cmd.commands.length === 0) return [{ path, cmd }];
  return cmd.commands.flatMap((c) => leaves(c, [...path, c.name()]));
}

function help(args: string[]): string {
  const program = ctlProgram();
  let out = '';
  const capture = (c: Command) => {
    c.configureOutput({ writeOut: (s) => (out += s), writeErr: (s) => (out += s) });
    c.commands.forEach(capture);
  };
  capture(program);
  try {
    program.parse(['node', 'sched-ctl', ...args, '--help']);
  } catch (err) {
    expect((err as { code?: string }).code).toBe('commander.helpDisplayed');
  }
  return out;
}

const commands = leaves(ctlProgram()).map((l) => l.path.join(' '));

describe('sched-ctl commands', () => {
  test('has exactly the documented command set', () => {
    expect(commands.sort()).toEqual(
      [
        'cluster status',
        'db migrate',
        'db prune',
        'failover list',
        'failover purge',
        'run cancel',
        'run list',
        'run rerun',
        'run show',
        'task logs',
        'workflow apply',
        'workflow delete',
        'workflow get',
        'workflow list',
        'workflow pause',
        'workflow resume',
        'workflow trigger',
        'zk get',
        'zk ls',
        'zk secure',
      ].sort(),
    );
  });

  test.each(commands)('%s --help describes the command', (command) => {
    const text = help(command.split(' '));
    expect(text).toContain(`Usage: sched-ctl ${command}`);
    expect(text.split('\n')[2]?.length).toBeGreaterThan(10); // a description line
  });

  test.each(commands.filter((c) => c !== 'task logs'))('%s has --json', (command) => {
    expect(help(command.split(' '))).toContain('--json');
  });
});
