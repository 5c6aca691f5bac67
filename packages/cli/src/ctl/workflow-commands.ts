import { UsageError } from '@sched/core';
import type { ApplyResult } from '@sched/store';
import type { Command } from 'commander';
import { stringify } from 'yaml';
import { readDefinitionSources } from './definition-files.js';
import { printJson, printTable } from './output.js';
import { withContext } from './with-context.js';

/** `workflow apply|list|get|delete|trigger|pause|resume` (REST API). */

export interface WorkflowListItemJson {
  name: string;
  version: number;
  tasks: number;
  schedule: { cron: string; timezone: string; paused: boolean } | null;
  nextFireTime: string | null;
  activeRuns: number;
  updatedAt: string;
}

const path = (name: string, suffix = '') => `/v1/workflows/${encodeURIComponent(name)}${suffix}`;

/** The definition without null, empty-object and empty-list fields: what a human wrote, roughly. */
function compact(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(compact);
  if (value !== null && typeof value === 'object') {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value)) {
      const c = compact(v);
      const empty =
        c === null ||
        (Array.isArray(c) && c.length === 0) ||
        (typeof c === 'object' && c !== null && !Array.isArray(c) && Object.keys(c).length === 0);
      if (!empty) out[k] = c;
    }
    return out;
  }
  return value;
}

function parseParams(list: string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (const item of list) {
    const i = item.indexOf('=');
    if (i <= 0) throw new UsageError(`--param ${JSON.stringify(item)}: expected NAME=VALUE`);
    out[item.slice(0, i)] = item.slice(i + 1);
  }
  return out;
}

export function workflowCommands(program: Command): void {
  const wf = program.command('workflow').description('Workflow definitions (via a master)');

  wf.command('apply')
    .description(
      'Create or update workflows from a YAML/JSON file (several documents allowed) or every .yaml/.yml/.json of a folder; all are validated before any is written',
    )
    .requiredOption('-f, --file <path>', 'definition file or folder')
    .option('--json', 'print JSON [{ name, version, status: created|updated|unchanged }]')
    .action(async function (this: Command) {
      const opts = this.opts<{ file: string; json?: boolean }>();
      // Validate locally before touching the network: a bad file changes nothing and needs no cluster.
      const { sources } = await readDefinitionSources(opts.file);
      await withContext(this, async (ctx) => {
        const { applied } = await ctx.api<{ applied: ApplyResult[] }>({
          method: 'POST',
          path: '/v1/workflows',
          body: { sources },
        });
        if (opts.json) return printJson(applied);
        printTable(
          ['WORKFLOW', 'VERSION', 'STATUS'],
          applied.map((a) => [a.name, a.version, a.status]),
        );
      });
    });

  wf.command('list')
    .description('Every workflow with its schedule, next fire time and active runs')
    .option('--json', 'print JSON [{ name, version, tasks, schedule, nextFireTime, activeRuns, updatedAt }]')
    .action(async function (this: Command) {
      await withContext(this, async (ctx, opts) => {
        const list = await ctx.api<WorkflowListItemJson[]>({ method: 'GET', path: '/v1/workflows' });
        if (opts.json) return printJson(list);
        if (list.length === 0) return void process.stdout.write('no workflows\n');
        printTable(
          ['WORKFLOW', 'VERSION', 'TASKS', 'SCHEDULE', 'TZ', 'PAUSED', 'NEXT FIRE', 'ACTIVE RUNS'],
          list.map((w) => [
            w.name,
            w.version,
            w.tasks,
            w.schedule?.cron ?? '(manual)',
            w.schedule?.timezone,
            w.schedule ? (w.schedule.paused ? 'yes' : 'no') : '',
            w.nextFireTime,
            w.activeRuns,
          ]),
        );
      });
    });

  wf.command('get')
    .description('Show the current definition of a workflow (normalised: durations in ms)')
    .argument('<name>', 'workflow name')
    .option('--json', 'print JSON { name, version, definition, paused, nextFireTime, createdAt, updatedAt }')
    .action(async function (this: Command, name: string) {
      await withContext(this, async (ctx, opts) => {
        const wf = await ctx.api<{
          name: string;
          version: number;
          definition: unknown;
          paused: boolean | null;
          nextFireTime: string | null;
        }>({ method: 'GET', path: path(name) });
        if (opts.json) return printJson(wf);
        process.stdout.write(
          `# ${wf.name} version ${wf.version}${wf.paused === null ? '' : wf.paused ? ', paused' : `, next fire ${wf.nextFireTime ?? '-'}`}\n`,
        );
        process.stdout.write(stringify(compact(wf.definition)));
      });
    });

  wf.command('delete')
    .description('Delete a workflow with its versions, schedule and run history')
    .argument('<name>', 'workflow name')
    .option('--force', 'delete even when runs are active (they are removed too)')
    .option('--json', 'print JSON { deleted }')
    .action(async function (this: Command, name: string) {
      await withContext(this, async (ctx, opts) => {
        const result = await ctx.api<{ deleted: string }>({
          method: 'DELETE',
          path: path(name, opts.force ? '?force=true' : ''),
        });
        if (opts.json) return printJson(result);
        process.stdout.write(`deleted workflow ${result.deleted}\n`);
      });
    });

  wf.command('trigger')
    .description('Start a run now (a durable command any master claims); prints the run id')
    .argument('<name>', 'workflow name')
    .option(
      '-p, --param <NAME=VALUE>',
      'run parameter (repeatable); tasks see it as an environment variable',
      (v: string, all: string[]) => [...all, v],
      [] as string[],
    )
    .option('--json', 'print JSON { commandId, runId }')
    .action(async function (this: Command, name: string) {
      const local = this.opts<{ param: string[] }>();
      const params = parseParams(local.param);
      await withContext(this, async (ctx, opts) => {
        const result = await ctx.api<{ commandId: number; runId: number | null }>({
          method: 'POST',
          path: path(name, '/trigger'),
          body: { params },
        });
        if (opts.json) return printJson(result);
        process.stdout.write(
          result.runId === null
            ? `trigger queued as command ${result.commandId}; no master has claimed it yet (see \`sched-ctl run list --workflow ${name}\`)\n`
            : `triggered ${name}: run ${result.runId}\n`,
        );
      });
    });

  for (const [verb, what] of [
    ['pause', 'Pause the schedule (no fires until resumed; missed fires are not caught up)'],
    ['resume', 'Resume the schedule from now'],
  ] as const) {
    wf.command(verb)
      .description(what)
      .argument('<name>', 'workflow name')
      .option('--json', 'print JSON { name, paused, nextFireTime }')
      .action(async function (this: Command, name: string) {
        await withContext(this, async (ctx, opts) => {
          const result = await ctx.api<{ name: string; paused: boolean; nextFireTime: string | null }>({
            method: 'POST',
            path: path(name, `/${verb}`),
          });
          if (opts.json) return printJson(result);
          process.stdout.write(
            `${name}: ${result.paused ? 'paused' : `resumed, next fire ${result.nextFireTime ?? '-'}`}\n`,
          );
        });
      });
  }
}
