import type { Logger } from '@sched/core';
import type { Db } from '@sched/store';
import pg from 'pg';

/**
 * Wakes the owner of a run when another master changed something for it (docs/design.md#runs: a
 * worker reports to any live master; the master that applies the report wakes the run's owner).
 *
 * PostgreSQL LISTEN/NOTIFY on one channel. Payload: `<owner key> <run id>,<run id>,…`, or `*` as
 * the owner when the sender does not know it (every master then loads the runs, and the owner
 * filter in the driver's query keeps only its own). Notifications are sent inside the caller's
 * transaction (or statement), so they are delivered only if the change committed.
 *
 * A lost notification costs latency, not correctness: the driver's periodic sweep re-drives every
 * owned active run.
 */
export const WAKE_CHANNEL = 'sched_run_wake';
/** Where `enqueueCommand` (store) announces new commands. */
export const COMMANDS_CHANNEL = 'sched_commands';
const MAX_PAYLOAD = 7_000; // NOTIFY payloads must stay below 8000 bytes

export async function notifyOwners(db: Db, byOwner: Map<string, number[]>): Promise<void> {
  const payloads: string[] = [];
  for (const [owner, ids] of byOwner) {
    let chunk: number[] = [];
    let size = owner.length + 1;
    for (const id of ids) {
      const add = String(id).length + 1;
      if (size + add > MAX_PAYLOAD && chunk.length > 0) {
        payloads.push(`${owner} ${chunk.join(',')}`);
        chunk = [];
        size = owner.length + 1;
      }
      chunk.push(id);
      size += add;
    }
    if (chunk.length > 0) payloads.push(`${owner} ${chunk.join(',')}`);
  }
  if (payloads.length === 0) return;
  await db.query(`SELECT pg_notify($1, p) FROM unnest($2::text[]) AS p`, [WAKE_CHANNEL, payloads]);
}

export function parseWakePayload(payload: string): { owner: string; runIds: number[] } | null {
  const space = payload.indexOf(' ');
  if (space <= 0) return null;
  const runIds = payload
    .slice(space + 1)
    .split(',')
    .map(Number)
    .filter((n) => Number.isSafeInteger(n) && n > 0);
  return { owner: payload.slice(0, space), runIds };
}

/** Listens for wake-ups addressed to this master (`nodeKey`) or to anyone on a dedicated connection; reconnects on loss. */
export class RunWakeListener {
  private client: pg.Client | null = null;
  private stopped = false;
  private retryTimer: NodeJS.Timeout | null = null;

  constructor(
    private readonly opts: {
      connectionString: string;
      /** This master's incarnation key: wake-ups addressed to it are its own. */
      nodeKey: string;
      onWake: (runIds: number[]) => void;
      logger: Logger;
      /** Called after every (re)connection: anything missed meanwhile must be swept. */
      onReconnect?: () => void;
      /** Called on NOTIFY `sched_commands` (a command was queued): claim it now instead of at the next poll. */
      onCommand?: () => void;
    },
  ) {}

  async start(): Promise<void> {
    await this.connect();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.retryTimer) clearTimeout(this.retryTimer);
    const c = this.client;
    this.client = null;
    await c?.end().catch(() => {});
  }

  private async connect(): Promise<void> {
    const client = new pg.Client({
      connectionString: this.opts.connectionString,
      application_name: 'sched-wake',
    });
    client.on('notification', (msg) => {
      if (msg.channel === COMMANDS_CHANNEL) {
        this.opts.onCommand?.();
        return;
      }
      if (msg.channel !== WAKE_CHANNEL || !msg.payload) return;
      const parsed = parseWakePayload(msg.payload);
      if (!parsed || (parsed.owner !== this.opts.nodeKey && parsed.owner !== '*')) return;
      this.opts.onWake(parsed.runIds);
    });
    client.on('error', (err) => {
      this.opts.logger.warn({ err }, 'wake listener connection lost; reconnecting');
      this.scheduleReconnect();
    });
    client.on('end', () => this.scheduleReconnect());
    try {
      await client.connect();
      await client.query(`LISTEN ${WAKE_CHANNEL}`);
      if (this.opts.onCommand) await client.query(`LISTEN ${COMMANDS_CHANNEL}`);
      this.client = client;
      this.opts.onReconnect?.();
    } catch (err) {
      await client.end().catch(() => {});
      if (this.stopped) return;
      this.opts.logger.warn({ err }, 'wake listener could not connect; retrying');
      this.scheduleReconnect();
    }
  }

  private scheduleReconnect(): void {
    if (this.stopped || this.retryTimer) return;
    this.client = null;
    this.retryTimer = setTimeout(() => {
      this.retryTimer = null;
      void this.connect();
    }, 1_000);
    this.retryTimer.unref();
  }
}
