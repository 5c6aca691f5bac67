/**
 * The delivery-confirmation ledger with fakes (no database, no network): every transition of its
 * table (src/runs/delivery-ledger.ts), and the ones that must not happen — above all, an attempt
 * that may be on a worker is never freed to move without that worker's word.
 */
import { WireError } from '@sched/protocol';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { WorkerUnreachableError } from '../src/dispatch/worker-client.js';
import {
  DeliveryLedger,
  type DispatchOutcome,
  type LedgerLogger,
  type LedgerStore,
  type LedgerWorkers,
  MAX_PER_REVOKE,
  REVOKED_STATE,
  type UncertainDelivery,
} from '../src/runs/delivery-ledger.js';

const W1 = { address: '10.0.0.1:5678', workerKey: '10.0.0.1:5678_1700000000001' };
const W2 = { address: '10.0.0.2:5678', workerKey: '10.0.0.2:5678_1700000000002' };
const RETRY_MS = 100;

/** Attempt `id` of run `id + 1000`, sent to `worker` at `seq`. */
const sent = (id: number, worker = W1, seq = 1): UncertainDelivery => ({
  attemptId: id,
  runId: id + 1000,
  ...worker,
  seq,
});

/** Attempt rows: `dispatched` to a worker key at a seq, or moved on. Fenced like `reassignAttempt`. */
class FakeStore implements LedgerStore {
  readonly rows = new Map<
    number,
    { state: 'dispatched' | 'pending' | 'running'; workerKey: string | null; seq: number }
  >();
  readonly released: { id: number; from: string; seq: number }[] = [];
  stillDispatchedCalls = 0;
  failing = false;

  dispatched(...list: UncertainDelivery[]): this {
    for (const a of list)
      this.rows.set(a.attemptId, { state: 'dispatched', workerKey: a.workerKey, seq: a.seq });
    return this;
  }

  async stillDispatched(
    list: { id: number; workerKey: string; dispatchSeq: number }[],
  ): Promise<Set<number>> {
    this.stillDispatchedCalls++;
    if (this.failing) throw new Error('database down');
    const rowOf = (id: number) => this.rows.get(id);
    return new Set(
      list
        .filter((q) => {
          const row = rowOf(q.id);
          return row?.state === 'dispatched' && row.workerKey === q.workerKey && row.seq === q.dispatchSeq;
        })
        .map((q) => q.id),
    );
  }

  async release(id: number, from: string, seq: number): Promise<number | null> {
    const row = this.rows.get(id);
    if (!row || row.state === 'running' || row.workerKey !== from || row.seq !== seq) return null;
    this.released.push({ id, from, seq });
    row.state = 'pending';
    row.workerKey = null;
    row.seq += 1;
    return row.seq;
  }
}

/** Workers answering `revoke`: per attempt a state (`revoked`, or its state there) or silence. */
class FakeWorkers implements LedgerWorkers {
  readonly calls: {
    address: string;
    workerKey: string;
    attempts: { attemptId: string; dispatchSeq: number }[];
  }[] = [];
  reachable = true;
  /** Attempt id → what the worker answers; absent: it says nothing of it. */
  readonly answers = new Map<number, string>();

  async revoke(
    address: string,
    workerKey: string,
    attempts: { attemptId: string; dispatchSeq: number }[],
  ): Promise<Map<string, string>> {
    this.calls.push({ address, workerKey, attempts });
    if (!this.reachable) throw new WorkerUnreachableError(address, new Error('connect ECONNREFUSED'));
    const out = new Map<string, string>();
    for (const a of attempts) {
      const answer = this.answers.get(Number(a.attemptId));
      if (answer !== undefined) out.set(a.attemptId, answer);
    }
    return out;
  }

  asked(): number[] {
    return this.calls.flatMap((c) => c.attempts.map((a) => Number(a.attemptId)));
  }
}

class FakeLogger implements LedgerLogger {
  readonly lines: { level: 'info' | 'warn'; msg: string }[] = [];
  info(_fields: object, msg: string): void {
    this.lines.push({ level: 'info', msg });
  }
  warn(_fields: object, msg: string): void {
    this.lines.push({ level: 'warn', msg });
  }
}

function setup(opts: { lease?: { valid: boolean } } = {}) {
  const store = new FakeStore();
  const workers = new FakeWorkers();
  const logger = new FakeLogger();
  const lease = opts.lease ?? { valid: true };
  const woken: number[][] = [];
  const ledger = new DeliveryLedger({
    store,
    workers,
    leaseValid: () => lease.valid,
    wake: (ids) => woken.push(ids),
    logger,
    retryMs: RETRY_MS,
  });
  return { store, workers, logger, lease, woken, ledger };
}

/** Holds `a` (a copy may be there; the answer came from another registration). */
function held(ledger: DeliveryLedger, a: UncertainDelivery): void {
  expect(ledger.afterDispatch(a, { kind: 'refused', code: WireError.WrongRegistration }, true)).toBe(
    'unconfirmed',
  );
}

const ALL_CODES = [...Object.values(WireError), 'NO_ANSWER', 'HTTP_502'];

describe('sent: what a dispatch answer allows', () => {
  it.each([false, true])('accepted or duplicate (copy may be there: %s) → confirmed-has-it', (copy) => {
    const { ledger } = setup();
    expect(ledger.afterDispatch(sent(1), { kind: 'taken' }, copy)).toBe('confirmed-has-it');
    expect(ledger.entry(1)).toBeUndefined();
  });

  it.each(ALL_CODES)('no copy can be there, refused %s → free (revoked for ATTEMPT_REVOKED)', (code) => {
    const { ledger, workers } = setup();
    const verdict = ledger.afterDispatch(sent(1), { kind: 'refused', code }, false);
    expect(verdict).toBe(code === WireError.AttemptRevoked ? 'revoked' : 'free');
    expect(ledger.entry(1)).toBeUndefined();
    expect(workers.calls).toEqual([]);
  });

  it('no copy can be there, the request failed before it was whole → free', () => {
    const { ledger } = setup();
    expect(ledger.afterDispatch(sent(1), { kind: 'not-sent' }, false)).toBe('free');
  });

  it('a copy may be there, refused ATTEMPT_REVOKED → revoked (the worker refuses it for good)', () => {
    const { ledger } = setup();
    const verdict = ledger.afterDispatch(sent(1), { kind: 'refused', code: WireError.AttemptRevoked }, true);
    expect(verdict).toBe('revoked');
    expect(ledger.entry(1)).toBeUndefined();
  });

  it.each([WireError.WrongIncarnation, WireError.WrongRegistration])(
    'a copy may be there, refused %s → unconfirmed (held, not asked now)',
    (code) => {
      const { ledger, workers } = setup();
      expect(ledger.afterDispatch(sent(1), { kind: 'refused', code }, true)).toBe('unconfirmed');
      expect(ledger.entry(1)).toEqual({ kind: 'unconfirmed', ...sent(1) });
      expect(workers.calls).toEqual([]);
    },
  );

  it.each(
    ALL_CODES.filter(
      (c) =>
        c !== WireError.AttemptRevoked &&
        c !== WireError.WrongIncarnation &&
        c !== WireError.WrongRegistration,
    ),
  )('a copy may be there, refused %s → ask', (code) => {
    const { ledger } = setup();
    expect(ledger.afterDispatch(sent(1), { kind: 'refused', code }, true)).toBe('ask');
    expect(ledger.entry(1)).toBeUndefined();
  });

  it('a copy may be there, the request failed before it was whole → ask', () => {
    const { ledger } = setup();
    expect(ledger.afterDispatch(sent(1), { kind: 'not-sent' }, true)).toBe('ask');
  });

  it.each([false, true])('answer lost (copy may be there: %s) → ask', (copy) => {
    const { ledger } = setup();
    expect(ledger.afterDispatch(sent(1), { kind: 'answer-lost' }, copy)).toBe('ask');
  });

  it('never: a copy may be there and it is freed on anything but the worker’s ATTEMPT_REVOKED', () => {
    const outcomes: DispatchOutcome[] = [
      { kind: 'answer-lost' },
      { kind: 'not-sent' },
      ...ALL_CODES.map((code) => ({ kind: 'refused' as const, code })),
    ];
    for (const outcome of outcomes) {
      const { ledger } = setup();
      const verdict = ledger.afterDispatch(sent(1), outcome, true);
      const freed = verdict === 'free' || verdict === 'revoked';
      expect(freed, JSON.stringify(outcome)).toBe(
        outcome.kind === 'refused' && outcome.code === WireError.AttemptRevoked,
      );
    }
  });
});

describe('asking: what the worker’s word (or silence) makes of attempts', () => {
  it('revoked → revoked; another state → confirmed-has-it; silent → unconfirmed (held)', async () => {
    const { ledger, workers } = setup();
    workers.answers.set(1, REVOKED_STATE);
    workers.answers.set(2, 'running');
    workers.answers.set(3, 'succeeded');
    const verdicts = await ledger.confirm(W1.address, W1.workerKey, [
      sent(1, W1, 4),
      sent(2),
      sent(3),
      sent(4),
    ]);
    expect([...verdicts]).toEqual([
      [1, 'revoked'],
      [2, 'confirmed-has-it'],
      [3, 'confirmed-has-it'],
      [4, 'unconfirmed'],
    ]);
    // One revoke to that incarnation, each attempt at the seq it was sent with.
    expect(workers.calls).toEqual([
      {
        address: W1.address,
        workerKey: W1.workerKey,
        attempts: [
          { attemptId: '1', dispatchSeq: 4 },
          { attemptId: '2', dispatchSeq: 1 },
          { attemptId: '3', dispatchSeq: 1 },
          { attemptId: '4', dispatchSeq: 1 },
        ],
      },
    ]);
    expect(ledger.entry(1)).toBeUndefined();
    expect(ledger.entry(2)).toBeUndefined();
    expect(ledger.entry(4)).toEqual({ kind: 'unconfirmed', ...sent(4) });
  });

  it('the worker cannot be asked → every attempt unconfirmed (held), and said so', async () => {
    const { ledger, workers, logger } = setup();
    workers.reachable = false;
    const verdicts = await ledger.confirm(W1.address, W1.workerKey, [sent(1), sent(2)]);
    expect([...verdicts.values()]).toEqual(['unconfirmed', 'unconfirmed']);
    expect(ledger.entry(1)?.kind).toBe('unconfirmed');
    expect(ledger.entry(2)?.kind).toBe('unconfirmed');
    expect(logger.lines).toEqual([
      {
        level: 'warn',
        msg: 'could not ask the worker whether it has the attempts; they stay with it until it answers or is failed over',
      },
    ]);
  });

  it(`asks in requests of at most ${MAX_PER_REVOKE} attempts`, async () => {
    const { ledger, workers } = setup();
    const list = Array.from({ length: 2 * MAX_PER_REVOKE + 1 }, (_, i) => sent(i + 1));
    for (const a of list) workers.answers.set(a.attemptId, REVOKED_STATE);
    const verdicts = await ledger.confirm(W1.address, W1.workerKey, list);
    expect(workers.calls.map((c) => c.attempts.length)).toEqual([MAX_PER_REVOKE, MAX_PER_REVOKE, 1]);
    expect(new Set(verdicts.values())).toEqual(new Set(['revoked']));
  });

  it('the worker’s word settles an attempt held before: forgotten', async () => {
    const { ledger, workers } = setup();
    held(ledger, sent(1));
    workers.answers.set(1, 'running');
    await ledger.confirm(W1.address, W1.workerKey, [sent(1)]);
    expect(ledger.entry(1)).toBeUndefined();
  });

  it('nothing to ask about → no request', async () => {
    const { ledger, workers } = setup();
    expect((await ledger.confirm(W1.address, W1.workerKey, [])).size).toBe(0);
    expect(workers.calls).toEqual([]);
  });
});

describe('undelivered: sent again on the run’s next drive', () => {
  it('marked when the send failed, taken once by the next drive', () => {
    const { ledger } = setup();
    ledger.markUndelivered([1, 2]);
    expect(ledger.entry(1)).toEqual({ kind: 'undelivered', attemptId: 1 });
    expect(ledger.size).toBe(2);
    expect(ledger.takeUndelivered(1)).toBe(true);
    expect(ledger.takeUndelivered(1)).toBe(false);
    expect(ledger.entry(1)).toBeUndefined();
    expect(ledger.takeUndelivered(3)).toBe(false);
  });

  it('an unconfirmed attempt stays unconfirmed (asked about, not sent elsewhere)', () => {
    const { ledger } = setup();
    held(ledger, sent(1));
    ledger.markUndelivered([1]);
    expect(ledger.entry(1)?.kind).toBe('unconfirmed');
    expect(ledger.takeUndelivered(1)).toBe(false);
  });

  it('an undelivered attempt that is then held is unconfirmed', () => {
    const { ledger } = setup();
    ledger.markUndelivered([1]);
    held(ledger, sent(1));
    expect(ledger.entry(1)?.kind).toBe('unconfirmed');
    expect(ledger.takeUndelivered(1)).toBe(false);
  });
});

describe('unconfirmed: the recheck', () => {
  it('its row moved on (a report, the failover) → forgotten, the worker not asked', async () => {
    const { ledger, store, workers } = setup();
    held(ledger, sent(1));
    held(ledger, sent(2));
    store.dispatched(sent(2));
    store.rows.set(1, { state: 'running', workerKey: W1.workerKey, seq: 1 });
    workers.reachable = false;
    await ledger.recheck();
    expect(ledger.entry(1)).toBeUndefined();
    expect(ledger.entry(2)?.kind).toBe('unconfirmed');
    expect(workers.asked()).toEqual([2]);
  });

  it('dispatched again at another seq counts as moved on', async () => {
    const { ledger, store, workers } = setup();
    held(ledger, sent(1, W1, 1));
    store.dispatched(sent(1, W1, 3));
    await ledger.recheck();
    expect(ledger.entry(1)).toBeUndefined();
    expect(workers.calls).toEqual([]);
  });

  it('the worker answers revoked → back to pending, fenced on its worker and seq, and its run woken', async () => {
    const { ledger, store, workers, woken, logger } = setup();
    const a = sent(1, W1, 2);
    held(ledger, a);
    store.dispatched(a);
    workers.answers.set(1, REVOKED_STATE);
    await ledger.recheck();
    expect(store.released).toEqual([{ id: 1, from: W1.workerKey, seq: 2 }]);
    expect(store.rows.get(1)).toEqual({ state: 'pending', workerKey: null, seq: 3 });
    expect(woken).toEqual([[1001]]);
    expect(ledger.entry(1)).toBeUndefined();
    expect(logger.lines.map((l) => l.msg)).toEqual([
      'the worker confirmed it does not have attempts whose dispatch answer was lost; dispatching them again',
    ]);
  });

  it('revoked, but the row moved on meanwhile → forgotten, its run not woken', async () => {
    const { ledger, store, workers, woken } = setup();
    held(ledger, sent(1));
    store.dispatched(sent(1));
    workers.answers.set(1, REVOKED_STATE);
    const release = store.release.bind(store);
    store.release = async (id, from, seq) => {
      store.rows.set(id, { state: 'running', workerKey: from, seq });
      return release(id, from, seq);
    };
    await ledger.recheck();
    expect(store.released).toEqual([]);
    expect(woken).toEqual([]);
    expect(ledger.entry(1)).toBeUndefined();
  });

  it('the worker answers another state (it has it) → confirmed-has-it: forgotten, not moved', async () => {
    const { ledger, store, workers, woken } = setup();
    held(ledger, sent(1));
    store.dispatched(sent(1));
    workers.answers.set(1, 'queued');
    await ledger.recheck();
    expect(ledger.entry(1)).toBeUndefined();
    expect(store.released).toEqual([]);
    expect(woken).toEqual([]);
  });

  it('the worker cannot be asked, or says nothing of it → stays unconfirmed, nothing moved (quietly)', async () => {
    const { ledger, store, workers, woken, logger } = setup();
    held(ledger, sent(1));
    held(ledger, sent(2, W2));
    store.dispatched(sent(1), sent(2, W2));
    workers.answers.set(2, 'running');
    const revoke = workers.revoke.bind(workers);
    workers.revoke = async (address, key, attempts) => {
      if (address === W1.address) {
        workers.calls.push({ address, workerKey: key, attempts });
        throw new WorkerUnreachableError(address, new Error('timeout'));
      }
      return revoke(address, key, attempts);
    };
    await ledger.recheck();
    expect(ledger.entry(1)?.kind).toBe('unconfirmed');
    expect(ledger.entry(2)).toBeUndefined();
    // Silent about an attempt: also stays.
    workers.revoke = revoke;
    held(ledger, sent(3));
    store.dispatched(sent(3));
    await ledger.recheck();
    expect(ledger.entry(1)?.kind).toBe('unconfirmed');
    expect(ledger.entry(3)?.kind).toBe('unconfirmed');
    expect(store.released).toEqual([]);
    expect(woken).toEqual([]);
    expect(logger.lines).toEqual([]);
  });

  it('asks each worker incarnation in its own request', async () => {
    const { ledger, store, workers } = setup();
    const list = [
      sent(1),
      sent(2, W2),
      sent(3),
      sent(4, { address: W1.address, workerKey: `${W1.address}_1800000000000` }),
    ];
    for (const a of list) held(ledger, a);
    store.dispatched(...list);
    await ledger.recheck();
    expect(workers.calls.map((c) => [c.workerKey, c.attempts.map((a) => a.attemptId)])).toEqual([
      [W1.workerKey, ['1', '3']],
      [W2.workerKey, ['2']],
      [`${W1.address}_1800000000000`, ['4']],
    ]);
  });

  it('while the lease is not valid → nothing read, asked or moved', async () => {
    const lease = { valid: true };
    const { ledger, store, workers, woken } = setup({ lease });
    held(ledger, sent(1));
    store.dispatched(sent(1));
    workers.answers.set(1, REVOKED_STATE);
    lease.valid = false;
    await ledger.recheck();
    expect(store.stillDispatchedCalls).toBe(0);
    expect(workers.calls).toEqual([]);
    expect(store.released).toEqual([]);
    expect(woken).toEqual([]);
    expect(ledger.entry(1)?.kind).toBe('unconfirmed');
  });

  it('never: moved without the worker’s revoked, whatever else happens', async () => {
    const { ledger, store, workers, woken } = setup();
    const states = ['queued', 'running', 'succeeded', 'failed', 'killed', 'timed-out', 'failed-over'];
    const list = states.map((_, i) => sent(i + 1));
    for (const a of list) held(ledger, a);
    store.dispatched(...list, sent(100));
    for (const [i, s] of states.entries()) workers.answers.set(i + 1, s);
    held(ledger, sent(100)); // silent
    await ledger.recheck();
    workers.reachable = false;
    await ledger.recheck();
    expect(store.released).toEqual([]);
    expect(woken).toEqual([]);
  });
});

describe('the recheck timer, stop and clear', () => {
  beforeEach(() => {
    vi.useFakeTimers();
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  it('asks again every retryMs while any attempt is unconfirmed, and stops when none is', async () => {
    const { ledger, store, workers, woken } = setup();
    ledger.start();
    held(ledger, sent(1));
    store.dispatched(sent(1));
    workers.reachable = false;
    await vi.advanceTimersByTimeAsync(RETRY_MS - 1);
    expect(workers.calls).toHaveLength(0);
    await vi.advanceTimersByTimeAsync(1);
    expect(workers.calls).toHaveLength(1);
    await vi.advanceTimersByTimeAsync(RETRY_MS);
    expect(workers.calls).toHaveLength(2);
    workers.reachable = true;
    workers.answers.set(1, REVOKED_STATE);
    await vi.advanceTimersByTimeAsync(RETRY_MS);
    expect(woken).toEqual([[1001]]);
    expect(ledger.size).toBe(0);
    await vi.advanceTimersByTimeAsync(10 * RETRY_MS);
    expect(workers.calls).toHaveLength(3);
  });

  it('a recheck that fails (the database) is logged and tried again', async () => {
    const { ledger, store, logger, workers } = setup();
    ledger.start();
    held(ledger, sent(1));
    store.dispatched(sent(1));
    store.failing = true;
    await vi.advanceTimersByTimeAsync(RETRY_MS);
    expect(logger.lines.map((l) => l.msg)).toEqual(['asking workers about unconfirmed attempts failed']);
    store.failing = false;
    workers.answers.set(1, 'running');
    await vi.advanceTimersByTimeAsync(RETRY_MS);
    expect(ledger.entry(1)).toBeUndefined();
  });

  it('not started, or stopped → no recheck; clear() forgets every entry', async () => {
    const { ledger, store, workers } = setup();
    held(ledger, sent(1));
    store.dispatched(sent(1));
    await vi.advanceTimersByTimeAsync(5 * RETRY_MS);
    expect(workers.calls).toEqual([]);
    ledger.start();
    held(ledger, sent(2));
    store.dispatched(sent(2));
    ledger.stop();
    ledger.markUndelivered([3]);
    await vi.advanceTimersByTimeAsync(5 * RETRY_MS);
    expect(workers.calls).toEqual([]);
    expect(ledger.size).toBe(3);
    ledger.clear();
    expect(ledger.size).toBe(0);
    expect(ledger.entry(1)).toBeUndefined();
    expect(ledger.takeUndelivered(3)).toBe(false);
  });
});
