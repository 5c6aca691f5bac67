import { type WithDefaults, withDefaults } from '@sched/core';
import { WireError } from '@sched/protocol';
import type { Db } from '@sched/store';
import type { WorkerClient } from '../dispatch/worker-client.js';
import { reassignAttempt, stillDispatched } from './run-drive-queries.js';

/**
 * The delivery-confirmation ledger: what the master knows about attempts whose delivery to their
 * worker is uncertain, and the lost-answer protocol that settles it (docs/design.md#dispatch,
 * docs/failover.md "A master, about a dispatch whose answer was lost"). An attempt that may be on
 * a worker is never given to another one until that worker has said it does not have it
 * (`revoke`, up to the attempt's dispatch seq) — or the leader's failover takes it.
 *
 * One attempt's states (`sent`, `asking` and the final ones are not kept; `undelivered` and
 * `unconfirmed` are, as {@link LedgerEntry}):
 *
 * | state                       | event                                                         | next                                   |
 * |-----------------------------|---------------------------------------------------------------|----------------------------------------|
 * | sent                        | answer `accepted` / `duplicate`                               | confirmed-has-it                       |
 * | sent, no copy can be there  | refused (any code), or the request failed before it was whole | free (next fallback, or `pending`)     |
 * | sent, a copy may be there   | refused `ATTEMPT_REVOKED`                                     | revoked                                |
 * | sent, a copy may be there   | refused `WRONG_INCARNATION` / `WRONG_REGISTRATION`            | unconfirmed (not asked now: who answered cannot speak for the registration on the row, whose failover may take it first) |
 * | sent, a copy may be there   | refused otherwise, or the request failed before it was whole  | asking                                 |
 * | sent                        | answer lost (the request was written, no answer came)         | asking                                 |
 * | sent                        | the send failed as a whole, the lease was not valid, or the database failed in its worker's group | undelivered (an unconfirmed one stays unconfirmed) |
 * | asking                      | the worker answers `revoked`                                  | revoked                                |
 * | asking                      | the worker answers another state (it has it)                  | confirmed-has-it                       |
 * | asking                      | the worker cannot be asked (unreachable, another incarnation), or says nothing of it | unconfirmed     |
 * | undelivered                 | its run's next drive                                          | sent again, to the worker its row names (a copy may be there) |
 * | unconfirmed                 | recheck (every `retryMs`): its row moved on (a report, the failover, another seq) | forgotten          |
 * | unconfirmed                 | recheck: the worker answers `revoked`                         | revoked: back to `pending` (fenced on worker, seq and owner), its run woken |
 * | unconfirmed                 | recheck: the worker answers another state                     | confirmed-has-it                       |
 * | unconfirmed                 | recheck: the worker cannot be asked, or says nothing of it    | unconfirmed                            |
 * | unconfirmed                 | recheck while the lease is not valid                          | unconfirmed (nothing read, asked or moved) |
 * | undelivered / unconfirmed   | `stop()` then `clear()` (self-fencing, shutdown)              | forgotten: a restarted driver's first drive sends every `dispatched` row again (a copy may be there) |
 *
 * Final states: `confirmed-has-it` (stays with its worker, whose reports follow; forgotten),
 * `revoked` and `free` (may be given to another worker; every such move is fenced on the worker
 * and seq the row had).
 *
 * Never: `free` or `revoked` without the worker's word when a copy may be there — not on a lost
 * answer, not on a refusal other than `ATTEMPT_REVOKED`, not when the worker cannot be asked or
 * says nothing of the attempt, not on a recheck that could not ask; an `unconfirmed` attempt is
 * never moved to another worker (a revoked one goes back to `pending` and is routed again).
 *
 * The database and the worker client are injected ({@link LedgerStore}, {@link LedgerWorkers}),
 * so the ledger is tested with fakes (test/delivery-ledger.test.ts).
 */

/** The attempt's state a worker answers to `revoke` when it does not have it (now refuses every copy). */
export const REVOKED_STATE = 'revoked';

/** Attempts per revoke request: the worker's batch limit. */
export const MAX_PER_REVOKE = 1000;

/** An attempt sent to a worker whose delivery is uncertain. */
export interface UncertainDelivery {
  attemptId: number;
  runId: number;
  /** The worker's address and incarnation key, as the attempt was sent there. */
  address: string;
  workerKey: string;
  /** The row's `dispatch_seq` it was sent with (the revoke names it; every move is fenced on it). */
  seq: number;
}

/** An attempt the ledger keeps. */
export type LedgerEntry =
  | { kind: 'undelivered'; attemptId: number }
  | ({ kind: 'unconfirmed' } & UncertainDelivery);

/** What a dispatch request told about one attempt it carried. */
export type DispatchOutcome =
  /** The worker answered `accepted` or `duplicate`. */
  | { kind: 'taken' }
  /** The worker answered and refused it: `code` is a `WireError` code, or NO_ANSWER / HTTP_<status>. */
  | { kind: 'refused'; code: string }
  /** The request failed before it was fully written (or its answer said nothing of this attempt). */
  | { kind: 'not-sent' }
  /** The request was written, its answer was lost: the worker may have it. */
  | { kind: 'answer-lost' };

/** What may be done with an attempt after its dispatch (`unconfirmed`: the ledger holds it now). */
export type DispatchVerdict = 'confirmed-has-it' | 'free' | 'revoked' | 'ask' | 'unconfirmed';

/** What the worker's word (or its silence) made of an attempt asked about. */
export type AskVerdict = 'confirmed-has-it' | 'revoked' | 'unconfirmed';

/** The database as the ledger uses it. */
export interface LedgerStore {
  /** Of `list`, the attempts still `dispatched` to that worker key at that seq (the others moved on). */
  stillDispatched(list: { id: number; workerKey: string; dispatchSeq: number }[]): Promise<Set<number>>;
  /**
   * Back to `pending`, fenced on the worker key and seq it was held at and on this master owning
   * its run; the new seq, or null when the row moved on.
   */
  release(attemptId: number, fromWorkerKey: string, fromSeq: number): Promise<number | null>;
}

/** The worker client as the ledger uses it: `revoke` only. */
export type LedgerWorkers = Pick<WorkerClient, 'revoke'>;

export interface LedgerLogger {
  info(fields: object, msg: string): void;
  warn(fields: object, msg: string): void;
}

export interface DeliveryLedgerOptions {
  store: LedgerStore;
  workers: LedgerWorkers;
  /** False while the registry lease is not valid: a recheck then reads, asks and moves nothing. */
  leaseValid: () => boolean;
  /** Drives runs again (a revoked attempt went back to `pending`). */
  wake: (runIds: number[]) => void;
  logger: LedgerLogger;
  /** Ask a worker again about unconfirmed attempts after this long. @defaultValue 2000 */
  retryMs?: number;
}

export const DEFAULT_DELIVERY_LEDGER_OPTIONS = { retryMs: 2_000 } as const satisfies Required<
  Pick<DeliveryLedgerOptions, 'retryMs'>
>;

/** The {@link LedgerStore} over PostgreSQL for the master `nodeKey`, the owner of its runs (`run-drive-queries.ts`). */
export function ledgerStoreOf(db: Db, nodeKey: string): LedgerStore {
  return {
    stillDispatched: (list) => stillDispatched(db, list),
    release: (attemptId, fromWorkerKey, fromSeq) =>
      reassignAttempt(db, attemptId, fromWorkerKey, null, { fromSeq, owner: nodeKey }),
  };
}

export class DeliveryLedger {
  private readonly opts: WithDefaults<DeliveryLedgerOptions, typeof DEFAULT_DELIVERY_LEDGER_OPTIONS>;
  private readonly undelivered = new Set<number>();
  private readonly unconfirmed = new Map<number, UncertainDelivery>();
  private timer: NodeJS.Timeout | null = null;
  private running = false;

  constructor(opts: DeliveryLedgerOptions) {
    this.opts = withDefaults(opts, DEFAULT_DELIVERY_LEDGER_OPTIONS);
  }

  /** Rechecks held attempts from now on (every `retryMs` while any is held). */
  start(): void {
    this.running = true;
  }

  /** No more rechecks (a recheck in flight finishes); the entries stay until `clear()`. */
  stop(): void {
    this.running = false;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
  }

  /** Forgets every entry: a restarted driver sends every `dispatched` row again on its first drive. */
  clear(): void {
    this.undelivered.clear();
    this.unconfirmed.clear();
  }

  /** The attempt's entry, if the ledger keeps one. */
  entry(attemptId: number): LedgerEntry | undefined {
    const u = this.unconfirmed.get(attemptId);
    if (u) return { kind: 'unconfirmed', ...u };
    return this.undelivered.has(attemptId) ? { kind: 'undelivered', attemptId } : undefined;
  }

  /** Attempts kept (undelivered or unconfirmed). */
  get size(): number {
    return this.undelivered.size + this.unconfirmed.size;
  }

  /** Their send failed before any answer: sent again on their runs' next drive. */
  markUndelivered(attemptIds: Iterable<number>): void {
    for (const id of attemptIds) if (!this.unconfirmed.has(id)) this.undelivered.add(id);
  }

  /** Whether the attempt was undelivered (it is sent again now, and no longer kept). */
  takeUndelivered(attemptId: number): boolean {
    return this.undelivered.delete(attemptId);
  }

  /**
   * After a dispatch of `a` to its worker: what may be done with it. `copyMayBeThere`: an earlier
   * copy may already be at that worker (see `Placement`). `unconfirmed`: held (asked later).
   */
  afterDispatch(a: UncertainDelivery, outcome: DispatchOutcome, copyMayBeThere: boolean): DispatchVerdict {
    switch (outcome.kind) {
      case 'taken':
        return 'confirmed-has-it';
      case 'answer-lost':
        return 'ask';
      case 'not-sent':
        return copyMayBeThere ? 'ask' : 'free';
      case 'refused': {
        if (outcome.code === WireError.AttemptRevoked) return 'revoked';
        if (!copyMayBeThere) return 'free';
        // Another incarnation at the address, or this one on another registration (the view
        // lags): it cannot answer for the one the row names, whose failover may take it first.
        if (outcome.code === WireError.WrongIncarnation || outcome.code === WireError.WrongRegistration) {
          this.hold(a);
          return 'unconfirmed';
        }
        return 'ask';
      }
    }
  }

  /**
   * Asks the worker at `address` (incarnation `workerKey`) about attempts whose delivery is
   * uncertain, and makes it refuse every copy of those it does not have (`revoke`, up to their
   * seq; requests of at most {@link MAX_PER_REVOKE}). Those it could not be asked about are held.
   */
  async confirm(
    address: string,
    workerKey: string,
    list: UncertainDelivery[],
  ): Promise<Map<number, AskVerdict>> {
    const verdicts = new Map<number, AskVerdict>();
    if (list.length === 0) return verdicts;
    const states = await this.ask(address, workerKey, list, false);
    for (const a of list) {
      const verdict = verdictOf(states?.get(String(a.attemptId)));
      if (verdict === 'unconfirmed') this.hold(a);
      else this.forget(a.attemptId);
      verdicts.set(a.attemptId, verdict);
    }
    return verdicts;
  }

  /**
   * Held attempts: forgotten once their row moved on; otherwise their worker is asked again, and
   * those it does not have go back to `pending` (fenced on the same worker and seq) and their
   * runs are woken. Runs every `retryMs` while any is held; public for tests.
   */
  async recheck(): Promise<void> {
    if (!this.opts.leaseValid()) return;
    const held = [...this.unconfirmed.values()];
    const still = await this.opts.store.stillDispatched(
      held.map((u) => ({ id: u.attemptId, workerKey: u.workerKey, dispatchSeq: u.seq })),
    );
    const byWorker = new Map<string, UncertainDelivery[]>();
    for (const u of held) {
      if (!still.has(u.attemptId)) {
        this.unconfirmed.delete(u.attemptId);
        continue;
      }
      const k = `${u.address} ${u.workerKey}`;
      byWorker.set(k, [...(byWorker.get(k) ?? []), u]);
    }
    for (const list of byWorker.values()) {
      const { address, workerKey } = list[0] as UncertainDelivery;
      const states = await this.ask(address, workerKey, list, true);
      if (!states) continue; // still unreachable: ask again later
      const wake: number[] = [];
      for (const u of list) {
        const verdict = verdictOf(states.get(String(u.attemptId)));
        if (verdict === 'unconfirmed') continue;
        this.unconfirmed.delete(u.attemptId);
        if (verdict === 'confirmed-has-it') continue; // its reports follow
        const moved = await this.opts.store.release(u.attemptId, u.workerKey, u.seq);
        if (moved !== null) wake.push(u.runId);
      }
      if (wake.length > 0) {
        this.opts.logger.info(
          { worker: address, attempts: wake.length },
          'the worker confirmed it does not have attempts whose dispatch answer was lost; dispatching them again',
        );
        this.opts.wake(wake);
      }
    }
  }

  /** Keeps the attempt with its worker; asked again every `retryMs`. */
  private hold(a: UncertainDelivery): void {
    this.undelivered.delete(a.attemptId);
    this.unconfirmed.set(a.attemptId, { ...a });
    this.scheduleRecheck();
  }

  private forget(attemptId: number): void {
    this.undelivered.delete(attemptId);
    this.unconfirmed.delete(attemptId);
  }

  private scheduleRecheck(): void {
    if (this.timer || !this.running || this.unconfirmed.size === 0) return;
    this.timer = setTimeout(() => {
      this.timer = null;
      this.recheck()
        .catch((err) => this.opts.logger.warn({ err }, 'asking workers about unconfirmed attempts failed'))
        .finally(() => this.scheduleRecheck());
    }, this.opts.retryMs);
    this.timer.unref();
  }

  /** `revoke` on the worker: each attempt's state there, or `revoked`; null when it could not be asked. */
  private async ask(
    address: string,
    workerKey: string,
    list: readonly UncertainDelivery[],
    quiet: boolean,
  ): Promise<Map<string, string> | null> {
    try {
      const states = new Map<string, string>();
      for (let i = 0; i < list.length; i += MAX_PER_REVOKE) {
        const chunk = list.slice(i, i + MAX_PER_REVOKE);
        const answer = await this.opts.workers.revoke(
          address,
          workerKey,
          chunk.map((x) => ({ attemptId: String(x.attemptId), dispatchSeq: x.seq })),
        );
        for (const [id, state] of answer) states.set(id, state);
      }
      return states;
    } catch (err) {
      if (!quiet) {
        this.opts.logger.warn(
          { err, worker: address, attempts: list.map((x) => x.attemptId) },
          'could not ask the worker whether it has the attempts; they stay with it until it answers or is failed over',
        );
      }
      return null;
    }
  }
}

/** The worker's answer about one attempt: its state there, `revoked`, or nothing (not asked, or silent). */
function verdictOf(state: string | undefined): AskVerdict {
  if (state === undefined) return 'unconfirmed';
  return state === REVOKED_STATE ? 'revoked' : 'confirmed-has-it';
}
