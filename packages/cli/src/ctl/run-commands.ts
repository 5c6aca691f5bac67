import { UsageError } from '@sched/core';
import type { RunDetailJson, RunSummaryJson } from '@sched/master';
import type { Command } from 'commander';
import { printJson, printTable } from './output.js';
import { withContext } from './with-context.js';

/** `run list|show|cancel|rerun` (REST API). */

function runId(text: string): string {
  if (!/^[1-9]\d{0,15}$/.test(text))
    throw new UsageError(`run id: expected a positive integer, got ${JSON.stringify(text)}`);
  return text;
}

export function runCommands(program: Command): void {
  const run = program.command('run').description('Workflow runs (via a master)');

  run
    .command('list')
    .description('Runs, newest first')
    .option('--workflow <name>', 'only runs of this workflow')
    .option('--state <state>', 'only runs in this state: pending, running, succeeded, failed, cancelled')
    .option('--since <iso>', 'only runs created at or after this ISO 8601 time')
    .option('--limit <n>', 'at most this many runs (1..10000)', '100')
    .option('--json', 'print JSON [{ id, workflow, state, fireTime, createdAt, endedAt }] (docs/cli.md)')
    .action(async function (this: Command) {
      await withContext(this, async (ctx, opts) => {
        const q = new URLSearchParams();
        for (const key of ['workflow', 'state', 'since', 'limit'] as const) {
          if (typeof opts[key] === 'string') q.set(key, opts[key] as string);
        }
        const runs = await ctx.api<RunSummaryJson[]>({ method: 'GET', path: `/v1/runs?${q}` });
        if (opts.json) return printJson(runs);
        if (runs.length === 0) return void process.stdout.write('no runs\n');
        printTable(
          ['ID', 'WORKFLOW', 'STATE', 'TRIGGER', 'FIRE TIME', 'CREATED', 'ENDED'],
          runs.map((r) => [r.id, r.workflow, r.state, r.trigger, r.fireTime, r.createdAt, r.endedAt]),
        );
      });
    });

  run
    .command('show')
    .description('One run with its tasks and every attempt (the attempt id is what `task logs` takes)')
    .argument('<id>', 'run id')
    .option(
      '--json',
      'print JSON { id, workflow, state, owner, fireToStartMs, tasks: [{ name, state, attempts }] } (docs/cli.md)',
    )
    .action(async function (this: Command, id: string) {
      await withContext(this, async (ctx, opts) => {
        const r = await ctx.api<RunDetailJson>({ method: 'GET', path: `/v1/runs/${runId(id)}` });
        if (opts.json) return printJson(r);
        process.stdout.write(
          `run ${r.id}  ${r.workflow} v${r.workflowVersion}  ${r.state}${r.cancelRequestedAt ? ' (cancel requested)' : ''}\n` +
            `  trigger ${r.trigger}, fire time ${r.fireTime ?? '-'}, created ${r.createdAt}, ended ${r.endedAt ?? '-'}\n` +
            (r.fireToStartMs === null || r.fireToStartMs === undefined
              ? ''
              : `  fire to start ${r.fireToStartMs} ms (the first task started on its worker after the fire time)\n`) +
            `  owner ${r.owner ?? '-'}${Object.keys(r.params).length ? `, params ${JSON.stringify(r.params)}` : ''}\n`,
        );
        printTable(
          [
            'TASK',
            'STATE',
            'ATTEMPT',
            'ATTEMPT ID',
            'SHARD',
            'WORKER',
            'ATTEMPT STATE',
            'STARTED',
            'ENDED',
            'EXIT',
          ],
          r.tasks.flatMap((t) =>
            t.attempts.length === 0
              ? [[t.name, t.state]]
              : t.attempts.map((a, i) => [
                  i === 0 ? t.name : '',
                  i === 0 ? t.state : '',
                  a.attempt,
                  a.id,
                  a.shardTotal > 1 ? `${a.shardIndex}/${a.shardTotal}` : '',
                  a.worker,
                  a.state,
                  a.startedAt,
                  a.endedAt,
                  a.exitCode,
                ]),
          ),
        );
      });
    });

  run
    .command('cancel')
    .description(
      'Cancel a run: a pending run ends at once; a running run has its attempts killed by its owner',
    )
    .argument('<id>', 'run id')
    .option('--json', 'print JSON { id, state, cancelRequestedAt }')
    .action(async function (this: Command, id: string) {
      await withContext(this, async (ctx, opts) => {
        const r = await ctx.api<{ id: number; state: string; cancelRequestedAt: string | null }>({
          method: 'POST',
          path: `/v1/runs/${runId(id)}/cancel`,
        });
        if (opts.json) return printJson(r);
        process.stdout.write(
          r.state === 'cancelled'
            ? `run ${r.id} cancelled\n`
            : `run ${r.id}: cancel requested (its owner is stopping it)\n`,
        );
      });
    });

  run
    .command('rerun')
    .description(
      'Run an ended run again (same workflow version and parameters) as a new run: every task, or with --from-failed only the tasks that did not succeed',
    )
    .argument('<id>', 'run id')
    .option(
      '--from-failed',
      "run only the tasks that did not succeed; the others' successes are carried over",
    )
    .option('--json', 'print JSON { commandId, rerunOf, runId }')
    .action(async function (this: Command, id: string) {
      await withContext(this, async (ctx, opts) => {
        const r = await ctx.api<{ commandId: number; rerunOf: number; runId: number | null }>({
          method: 'POST',
          path: `/v1/runs/${runId(id)}/rerun`,
          ...(opts.fromFailed ? { body: { fromFailed: true } } : {}),
        });
        if (opts.json) return printJson(r);
        process.stdout.write(
          r.runId === null
            ? `re-run of ${r.rerunOf} queued as command ${r.commandId}; no master has claimed it yet\n`
            : `re-run of ${r.rerunOf}: run ${r.runId}\n`,
        );
      });
    });
}
