import { formatDuration, parseDuration, redactUrl, SchedError, UsageError } from '@sched/core';
import {
  countPrunableRuns,
  createPool,
  dbTimeoutsOf,
  migrate,
  type PruneCounts,
  pruneEndedRuns,
  retentionCutoff,
} from '@sched/store';
import type { Command } from 'commander';
import { requireDbUrl } from './ctl-config.js';
import type { CtlContext } from './ctl-context.js';
import { printJson } from './output.js';
import { withContext } from './with-context.js';

/**
 * `db migrate`: applies pending schema migrations (under an advisory lock; masters do this at start too).
 * `db prune`: deletes ended runs older than a duration with their attempts, in batches, as the
 * leader does after `db.retention` (docs/operations.md#retention).
 */
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

  db.command('prune')
    .description(
      'Delete ended runs (succeeded, failed, cancelled) older than a duration with their task attempts, ' +
        'oldest first, in batches of 1,000 with a pause between batches (what the leader does after db.retention); ' +
        'active runs, runs with an attempt in flight and runs a pending re-run names are kept',
    )
    .option(
      '--older-than <duration>',
      'delete runs that ended longer ago than this, e.g. 30d, 12h, 0 for every ended run (default: db.retention, 30d unless set)',
    )
    .option('--dry-run', 'count what would be deleted; delete nothing')
    .option('--json', 'print JSON { dryRun, olderThanMs, endedBefore, runs, attempts }')
    .addHelpText(
      'after',
      '\nSafe to run while masters run: rows another statement holds are left for a later pass.\n' +
        'Ctrl-C stops after the current batch and prints what was deleted.',
    )
    .action(async function (this: Command) {
      await withContext(this, async (ctx, opts) => {
        const olderThanMs = olderThan(ctx, opts.olderThan);
        const url = requireDbUrl(ctx.cfg, 'db prune');
        const dryRun = opts.dryRun === true;
        const pool = createPool(url, {
          max: 1,
          applicationName: 'sched-ctl',
          timeouts: dbTimeoutsOf(ctx.cfg.config.db),
        });
        const stop = new AbortController();
        const onSigint = () => stop.abort();
        process.once('SIGINT', onSigint);
        let endedBefore: Date;
        let counts: PruneCounts;
        try {
          endedBefore = await retentionCutoff(pool, olderThanMs);
          counts = dryRun
            ? await countPrunableRuns(pool, endedBefore)
            : await pruneEndedRuns(pool, {
                endedBefore,
                signal: stop.signal,
                onBatch: (_, total) => {
                  if (!opts.json)
                    process.stderr.write(
                      `  ${total.runs} run(s), ${total.attempts} attempt(s) deleted so far\n`,
                    );
                },
              });
        } catch (err) {
          throw new SchedError(
            'DB_PRUNE_FAILED',
            `could not prune runs in PostgreSQL at ${redactUrl(url)}: ${(err as Error).message} (set SCHED_DB_URL or --db-url)`,
            { retriable: true, cause: err },
          );
        } finally {
          process.off('SIGINT', onSigint);
          await pool.end().catch(() => {});
        }
        if (opts.json)
          return printJson({ dryRun, olderThanMs, endedBefore: endedBefore.toISOString(), ...counts });
        const verb = dryRun ? 'would delete' : stop.signal.aborted ? 'interrupted: deleted' : 'deleted';
        process.stdout.write(
          `${verb} ${counts.runs} run(s) and ${counts.attempts} task attempt(s) that ended before ` +
            `${endedBefore.toISOString()} (older than ${formatDuration(olderThanMs)})\n`,
        );
      });
    });
}

/** `--older-than`, or `db.retention` when not given (0 there means keep forever: then the flag is needed). */
function olderThan(ctx: CtlContext, given: unknown): number {
  if (given !== undefined) {
    try {
      return parseDuration(String(given), '--older-than');
    } catch (err) {
      throw new UsageError((err as Error).message);
    }
  }
  const retentionMs = ctx.cfg.config.db.retentionMs;
  if (retentionMs <= 0) {
    throw new UsageError(
      'db.retention is 0 (keep runs forever) here, so there is no default age: give --older-than DURATION (e.g. 30d)',
    );
  }
  return retentionMs;
}
