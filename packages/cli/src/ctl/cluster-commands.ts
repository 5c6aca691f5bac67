import { type FailoverRecordJson, readClusterStatus } from '@sched/master';
import type { Command } from 'commander';
import { age, epochIso, pct, printJson, printTable } from './output.js';
import { withContext } from './with-context.js';

/** `cluster status` (ZooKeeper directly) and `failover list|purge` (REST API). */
export function clusterCommands(program: Command): void {
  const cluster = program.command('cluster').description('Cluster inspection (reads ZooKeeper directly)');
  cluster
    .command('status')
    .description('Live masters (the leader marked) and workers, with heartbeat age, load and running tasks')
    .option('--json', 'print JSON (the shape in docs/cli.md)')
    .action(async function (this: Command) {
      await withContext(this, async (ctx, opts) => {
        const status = await readClusterStatus(await ctx.zk(), ctx.paths);
        if (opts.json) return printJson(status);
        process.stdout.write(`MASTERS (${status.masters.length})\n`);
        printTable(
          ['ADDRESS', 'LEADER', 'STATE', 'HEARTBEAT', 'STARTED', 'LOAD', 'CPU', 'MEM', 'PID'],
          status.masters.map((m) => [
            m.address,
            m.leader ? '*' : '',
            m.state,
            `${age(m.heartbeatAgeMs)} ago`,
            epochIso(m.startTime),
            m.load?.toFixed(2),
            pct(m.cpu),
            pct(m.memory),
            m.pid,
          ]),
          '  ',
        );
        process.stdout.write(`WORKERS (${status.workers.length})\n`);
        printTable(
          ['ADDRESS', 'STATE', 'GROUPS', 'RUNNING', 'HEARTBEAT', 'STARTED', 'LOAD', 'CPU', 'MEM', 'PID'],
          status.workers.map((w) => [
            w.address,
            w.state,
            w.groups,
            `${w.running}/${w.capacity ?? '?'}`,
            `${age(w.heartbeatAgeMs)} ago`,
            epochIso(w.startTime),
            w.load?.toFixed(2),
            pct(w.cpu),
            pct(w.memory),
            w.pid,
          ]),
          '  ',
        );
        if (!status.masters.some((m) => m.leader)) process.stdout.write('no leader elected right now\n');
      });
    });

  const failover = program.command('failover').description('FAILOVER_FINISH_NODES records (via a master)');
  failover
    .command('list')
    .description(
      'Incarnations that were failed over: when, by which leader, how many tasks and runs taken over',
    )
    .option('--json', 'print JSON (the shape in docs/cli.md)')
    .action(async function (this: Command) {
      await withContext(this, async (ctx, opts) => {
        const records = await ctx.api<FailoverRecordJson[]>({ method: 'GET', path: '/v1/failovers' });
        if (opts.json) return printJson(records);
        if (records.length === 0) return void process.stdout.write('no failover records\n');
        printTable(
          ['ROLE', 'ADDRESS', 'STARTED', 'FAILED OVER AT', 'BY', 'TASKS', 'RUNS'],
          records.map((r) => [
            r.role,
            r.address,
            epochIso(r.startTime),
            r.failedOverAt,
            r.by,
            r.tasks,
            r.runs,
          ]),
        );
      });
    });
  failover
    .command('purge')
    .description(
      'Delete failover records older than a duration (the leader also does this after failover.retention)',
    )
    .option('--older-than <duration>', 'age of the records to delete, e.g. 7d, 12h, 0s for all', '7d')
    .option('--json', 'print JSON { removed: [paths], olderThanMs }')
    .action(async function (this: Command) {
      await withContext(this, async (ctx, opts) => {
        const result = await ctx.api<{ removed: string[]; olderThanMs: number }>({
          method: 'DELETE',
          path: `/v1/failovers?olderThan=${encodeURIComponent(String(opts.olderThan))}`,
        });
        if (opts.json) return printJson(result);
        process.stdout.write(`removed ${result.removed.length} failover record(s)\n`);
        for (const p of result.removed) process.stdout.write(`  ${p}\n`);
      });
    });
}
