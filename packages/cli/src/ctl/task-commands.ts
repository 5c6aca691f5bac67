import { UsageError } from '@sched/core';
import type { Command } from 'commander';
import { withContext } from './with-context.js';

/** `task logs ID [-f]`: a task attempt's output, streamed from its worker through a master. */
export function taskCommands(program: Command): void {
  const task = program.command('task').description('Task attempts (via a master)');
  task
    .command('logs')
    .description(
      "Print a task attempt's output (the attempt id from `run show`); -f follows it until the attempt ends. When the worker is gone, the log tail stored at the end of the attempt is shown",
    )
    .argument('<id>', 'attempt id')
    .option('-f, --follow', 'keep streaming until the attempt ends')
    .action(async function (this: Command, id: string) {
      if (!/^[1-9]\d{0,15}$/.test(id))
        throw new UsageError(`attempt id: expected a positive integer, got ${JSON.stringify(id)}`);
      await withContext(this, async (ctx, opts) => {
        const res = await ctx.apiStream({
          method: 'GET',
          path: `/v1/attempts/${id}/log?follow=${opts.follow ? 'true' : 'false'}`,
        });
        if (res.headers['x-log-source'] === 'database') {
          process.stderr.write(
            `(the worker that ran attempt ${id} does not serve its log any more; showing the tail stored when it ended)\n`,
          );
        }
        const stop = () => res.destroy();
        process.once('SIGINT', stop);
        try {
          for await (const chunk of res as AsyncIterable<Buffer>) process.stdout.write(chunk);
        } catch {
          // interrupted (Ctrl-C) or the master went away mid-stream: what was printed stays
        } finally {
          process.off('SIGINT', stop);
        }
      });
    });
}
