import { ConfigError, DefinitionError, SchedError, UsageError } from '@sched/core';
import { type Command, CommanderError } from 'commander';

/**
 * Runs a commander program so that a user never sees a stack trace for bad input: a SchedError
 * prints its message (every issue of a ConfigError or DefinitionError on its own line) and exits
 * 2 for usage/config/definition problems, 1 for anything else. `SCHED_DEBUG=1` adds the stack.
 */
export async function runCli(program: Command, argv: string[] = process.argv): Promise<void> {
  // Subcommands do not inherit these once created, so set them on every command of the tree.
  const all = (c: Command): Command[] => [c, ...c.commands.flatMap(all)];
  for (const c of all(program)) {
    c.exitOverride();
    c.configureOutput({ outputError: (str, write) => write(str) });
  }
  try {
    await program.parseAsync(argv);
  } catch (err) {
    process.exitCode = reportError(program.name(), err);
  }
}

function reportError(name: string, err: unknown): number {
  if (err instanceof CommanderError) {
    // commander already printed its message (unknown command/option, missing argument) or help.
    return err.exitCode === 0 ? 0 : 2;
  }
  const debug = process.env.SCHED_DEBUG === '1';
  if (err instanceof SchedError) {
    process.stderr.write(`${name}: ${err.message}\n`);
    if (debug && err.stack) process.stderr.write(`${err.stack}\n`);
    const usage = err instanceof ConfigError || err instanceof DefinitionError || err instanceof UsageError;
    return usage ? 2 : 1;
  }
  const message = err instanceof Error ? err.message : String(err);
  process.stderr.write(`${name}: ${message}\n`);
  if (debug && err instanceof Error && err.stack) process.stderr.write(`${err.stack}\n`);
  return 1;
}
