import { type Clock, createLogger, type Logger, systemClock, withDefaults } from '@sched/core';
import {
  type CommandRow,
  CronSchedule,
  carryOverSucceededAttempts,
  claimNextCommand,
  claimTriggerCommands,
  getRun,
  getScheduleOfWorkflow,
  insertRuns,
  type NewRun,
  requeueBackfillRemainder,
  withTransaction,
} from '@sched/store';
import type pg from 'pg';
import { type PrepareRuns, prepareUnderSavepoint } from './staged-runs.js';

/**
 * CommandProcessor: claims durable commands (manual trigger with params, re-run, backfill over a
 * range) and creates their runs in the SAME transaction as the claim (DELETE … RETURNING): a
 * master that dies mid-way rolls back and the command is claimed again; a command is never done
 * twice. Any master with a valid lease claims; FOR UPDATE SKIP LOCKED lets several do so at once.
 *
 * A backfill creates at most `backfillChunk` runs per transaction and puts the rest of its range
 * back under the same command id, so a year of per-minute fires does not become one huge
 * transaction. A command that can never succeed (its workflow or run is gone, the workflow has no
 * schedule to backfill) is dropped with a warning instead of being retried forever.
 */

export interface CommandProcessorOptions {
  /** @defaultValue 500 */
  pollIntervalMs: number;
  /** @defaultValue 500 */
  backfillChunk: number;
  /** At most this many commands per poll. @defaultValue 100 */
  maxPerPoll: number;
  /** Manual triggers claimed per statement. @defaultValue 500 */
  triggerBatch: number;
  /**
   * LISTEN on `sched_commands` itself (one pooled connection held) so a command is claimed at
   * once. Off by default: the master daemon's RunWakeChannel already listens and calls poke().
   * @defaultValue false
   */
  listen: boolean;
}

export const DEFAULT_COMMAND_PROCESSOR_OPTIONS = {
  pollIntervalMs: 500,
  backfillChunk: 500,
  maxPerPoll: 100,
  triggerBatch: 500,
  listen: false,
} satisfies CommandProcessorOptions;

export interface CommandResult {
  commandId: number;
  kind: CommandRow['kind'];
  runIds: number[];
  dropped?: string;
  /** Runs whose first tasks were persisted in the claiming transaction and sent at its commit. */
  prepared?: ReadonlySet<number>;
}

export interface CommandProcessorDeps {
  pool: pg.Pool;
  /** This master's incarnation key; runs it creates are owned by it. */
  nodeKey: string;
  leaseValid: () => boolean;
  clock?: Clock;
  logger?: Logger;
  options?: Partial<CommandProcessorOptions>;
  onCommandDone?: (r: CommandResult) => void;
  /** Persists the first tasks of claimed manual runs in the claiming transaction (the run driver's `prepareFired`). */
  prepareRuns?: PrepareRuns;
}

export class CommandProcessor {
  private running = false;
  private timer: NodeJS.Timeout | undefined;
  private current: Promise<unknown> | null = null;
  private pokedWhileBusy = false;
  private listener: pg.PoolClient | undefined;
  private relistenTimer: NodeJS.Timeout | undefined;
  private readonly opts: CommandProcessorOptions;
  private readonly log: Logger;
  private readonly clock: Clock;

  constructor(private readonly deps: CommandProcessorDeps) {
    this.opts = withDefaults(deps.options ?? {}, DEFAULT_COMMAND_PROCESSOR_OPTIONS);
    this.log = (deps.logger ?? createLogger({ name: 'scheduler' })).child({ component: 'command-processor' });
    this.clock = deps.clock ?? systemClock;
  }

  start(): void {
    if (this.running) return;
    this.running = true;
    if (this.opts.listen) void this.listen();
    this.loop();
  }

  async stop(): Promise<void> {
    this.running = false;
    clearTimeout(this.timer);
    clearTimeout(this.relistenTimer);
    const listener = this.listener;
    this.listener = undefined;
    if (listener) {
      await listener.query('UNLISTEN sched_commands').catch(() => {});
      listener.release();
    }
    await this.current;
  }

  /** Wakes the processor now (NOTIFY sched_commands does this when listening). */
  poke(): void {
    if (!this.running) return;
    if (this.current) {
      this.pokedWhileBusy = true;
      return;
    }
    clearTimeout(this.timer);
    this.loop();
  }

  /** Holds one pooled connection that LISTENs on sched_commands; polling remains the fallback. */
  private async listen(): Promise<void> {
    try {
      const client = await this.deps.pool.connect();
      if (!this.running) {
        client.release();
        return;
      }
      client.on('notification', () => this.poke());
      client.on('error', (err) => {
        this.log.warn({ err }, 'command listener connection failed; polling until it is back');
        if (this.listener === client) this.listener = undefined;
        client.release(err);
        if (this.running) this.relistenTimer = setTimeout(() => void this.listen(), this.opts.pollIntervalMs);
      });
      await client.query('LISTEN sched_commands');
      this.listener = client;
    } catch (err) {
      this.log.warn({ err }, 'could not LISTEN for commands; polling');
      if (this.running)
        this.relistenTimer = setTimeout(() => void this.listen(), this.opts.pollIntervalMs * 10);
    }
  }

  private loop(): void {
    this.pokedWhileBusy = false;
    this.current = this.drain()
      .catch((err) => this.log.warn({ err }, 'command processing failed; retrying'))
      .finally(() => {
        this.current = null;
        if (!this.running) return;
        if (this.pokedWhileBusy) this.loop();
        else this.timer = setTimeout(() => this.loop(), this.opts.pollIntervalMs);
      });
  }

  /** Processes commands until none is left (or maxPerPoll). Returns what was done. */
  async drain(): Promise<CommandResult[]> {
    const done: CommandResult[] = [];
    // Manual triggers first, hundreds per statement (throughput); then the rest one by one.
    for (;;) {
      if (!this.deps.leaseValid()) return done;
      const { created, prepared } = await withTransaction(this.deps.pool, async (tx) => {
        const runs = await claimTriggerCommands(tx, this.deps.nodeKey, this.opts.triggerBatch);
        // Their first tasks in the same transaction, sent at its commit (like a pre-staged fire).
        const staged = runs.map((r) => ({ ...r, fireTimeMs: null }));
        return {
          created: runs,
          prepared: await prepareUnderSavepoint(tx, this.deps.prepareRuns, staged, this.log),
        };
      });
      prepared?.afterCommit();
      if (created.length === 0) break;
      for (const c of created) {
        const result: CommandResult = {
          commandId: c.commandId,
          kind: 'trigger',
          runIds: [c.runId],
          ...(prepared ? { prepared: prepared.runIds } : {}),
        };
        this.deps.onCommandDone?.(result);
        done.push(result);
      }
      this.log.debug({ runs: created.length }, 'trigger commands done');
      if (created.length < this.opts.triggerBatch) break;
    }
    for (let i = 0; i < this.opts.maxPerPoll; i++) {
      if (!this.deps.leaseValid()) break;
      const result = await withTransaction(this.deps.pool, async (tx) => {
        const cmd = await claimNextCommand(tx);
        if (!cmd) return null;
        return this.execute(tx, cmd);
      });
      if (!result) break;
      if (result.dropped) this.log.warn({ command: result }, 'command dropped');
      else
        this.log.info(
          { commandId: result.commandId, kind: result.kind, runs: result.runIds.length },
          'command done',
        );
      this.deps.onCommandDone?.(result);
      done.push(result);
    }
    return done;
  }

  private async execute(tx: pg.PoolClient, cmd: CommandRow): Promise<CommandResult> {
    const base = { commandId: cmd.id, kind: cmd.kind };
    const run = (r: Omit<NewRun, 'owner' | 'commandId'>): NewRun => ({
      ...r,
      owner: this.deps.nodeKey,
      commandId: cmd.id,
    });
    switch (cmd.kind) {
      case 'trigger': {
        if (cmd.workflowId === null) return { ...base, runIds: [], dropped: 'trigger without a workflow' };
        const ids = await insertRuns(tx, [
          run({
            workflowId: cmd.workflowId,
            workflowVersion: null,
            fireTimeMs: null,
            trigger: 'manual',
            params: cmd.params,
            rerunOf: null,
          }),
        ]);
        return { ...base, runIds: ids };
      }
      case 'rerun': {
        const original = cmd.runId === null ? null : await getRun(tx, cmd.runId);
        if (!original) return { ...base, runIds: [], dropped: `run ${cmd.runId} does not exist` };
        const ids = await insertRuns(tx, [
          run({
            workflowId: original.workflowId,
            workflowVersion: original.workflowVersion,
            fireTimeMs: original.fireTime ? original.fireTime.getTime() : null,
            trigger: 'rerun',
            params: { ...original.params, ...cmd.params },
            rerunOf: original.id,
          }),
        ]);
        // From the failed tasks: the new run starts with the original's successes (same transaction).
        if (cmd.fromFailed && ids[0] !== undefined) await carryOverSucceededAttempts(tx, original.id, ids[0]);
        return { ...base, runIds: ids };
      }
      case 'backfill': {
        if (cmd.workflowId === null || cmd.rangeStartMs === null || cmd.rangeEndMs === null) {
          return { ...base, runIds: [], dropped: 'backfill without a workflow or range' };
        }
        const schedule = await getScheduleOfWorkflow(tx, cmd.workflowId);
        if (!schedule) return { ...base, runIds: [], dropped: 'the workflow has no schedule to backfill' };
        // The range is inclusive at both ends; the schedule's own start/end do not limit a backfill.
        const cron = new CronSchedule(schedule.cron, { timezone: schedule.timezone });
        const times = cron.between(cmd.rangeStartMs - 1, cmd.rangeEndMs, this.opts.backfillChunk + 1);
        const chunk = times.slice(0, this.opts.backfillChunk);
        const rest = times[this.opts.backfillChunk];
        const ids = await insertRuns(
          tx,
          chunk.map((t) =>
            run({
              workflowId: cmd.workflowId as number,
              workflowVersion: null,
              fireTimeMs: t,
              trigger: 'backfill',
              params: cmd.params,
              rerunOf: null,
            }),
          ),
        );
        if (rest !== undefined) await requeueBackfillRemainder(tx, cmd, rest);
        this.log.debug(
          { commandId: cmd.id, now: this.clock.now(), created: ids.length, more: rest !== undefined },
          'backfill chunk',
        );
        return { ...base, runIds: ids };
      }
    }
  }
}
