import { redactUrl, SchedError } from '@sched/core';
import { migrate } from '@sched/store';
import type { Command } from 'commander';
import { requireDbUrl } from './ctl-config.js';
import { printJson } from './output.js';
import { withContext } from './with-context.js';

/** `db migrate`: applies pending schema migrations (under an advisory lock; masters do this at start too). */
export function dbCommands(program: Command): void {
  const db = program.command('db').description('PostgreSQL schema (connects to PostgreSQL directly)');
  db.command('migrate')
    .description(
      'Apply pending schema migrations (safe to run while masters run: an advisory lock serialises them)',
    )
    .option('--json', 'print JSON { applied: [names] }')
    .action(async function (this: Command) {
      await withContext(this, async (ctx, opts) => {
        const url = requireDbUrl(ctx.cfg);
        const limitMs = ctx.cfg.requestTimeoutMs;
        let timer: NodeJS.Timeout | undefined;
        let applied: string[];
        try {
          applied = await Promise.race([
            migrate(url),
            new Promise<never>((_, reject) => {
              timer = setTimeout(() => reject(new Error(`no answer within ${limitMs} ms`)), limitMs);
              timer.unref();
            }),
          ]);
        } catch (err) {
          throw new SchedError(
            'DB_UNREACHABLE',
            `could not migrate PostgreSQL at ${redactUrl(url)}: ${(err as Error).message} (set SCHED_DB_URL or --db-url)`,
            { retriable: true, cause: err },
          );
        } finally {
          clearTimeout(timer);
        }
        if (opts.json) return printJson({ applied });
        process.stdout.write(
          applied.length === 0
            ? 'database schema is up to date\n'
            : `applied ${applied.length} migration(s):\n${applied.map((m) => `  ${m}\n`).join('')}`,
        );
      });
    });
}
