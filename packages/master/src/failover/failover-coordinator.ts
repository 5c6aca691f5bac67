import { type Logger, parseIncarnationKey, SchedError, type WithDefaults, withDefaults } from '@sched/core';
import type {
  FailoverRecords,
  LeadershipTerm,
  Member,
  MemberRole,
  MembersView,
  RegistryPaths,
  ZkSession,
} from '@sched/registry';
import { type Db, type LeaderEpoch, withTransaction } from '@sched/store';
import type pg from 'pg';
import { notifyOwners } from '../runs/run-wake-channel.js';
import {
  countAttemptsOfNewerRegistration,
  type FailedIncarnation,
  type FailoverRow,
  failOverWorkerAttempts,
  getFailover,
  insertFailover,
  listReferencedIncarnations,
  listUnrecordedFailovers,
  lockLeaderEpoch,
  markRecorded,
  newestAttemptRegistration,
  purgeFailovers,
  reassignRunsOf,
  setFailoverCounts,
} from './failover-queries.js';

/**
 * The leader's failover duty (docs/design.md#failover). For one leadership term:
 *
 * 1. When a master or worker znode disappears, wait `delayMs` (the zombie, if it is one, has
 *    fenced itself by then: docs/failover.md gives the timing argument). Remember the czxid of
 *    the worker znode that went (its registration). If the incarnation registers again within
 *    the delay and that newer znode goes too, the wait starts again from its removal.
 * 2. If the same incarnation (address and startTime) is registered again, do nothing.
 * 3. In ONE PostgreSQL transaction fenced by the leader epoch: a worker's dispatched/running
 *    attempts become failed-over (their owners are woken and re-dispatch per the task's
 *    failover policy); a master's active runs are re-assigned to live masters (compare-and-set
 *    on owner) and their new owners woken. A `failovers` row records it.
 * 4. Write `/failover-finish-nodes/{role}/{key}`; mark the row recorded.
 *
 * Steps 2 and 3 are not atomic: the worker may register again (same key, new znode) right after
 * the check and be sent new work before the transaction. So step 3 takes over only attempts of
 * registrations known to be gone when the check found no znode — up to the newest of the removed
 * znode's czxid and the czxids active attempts recorded before the check (attempts recording
 * none count as old). Attempts dispatched to a newer registration are left to it: the worker
 * exits when the record appears, its znode goes, and that removal takes them over after the delay.
 *
 * A graceful stop (last heartbeat DRAINING and nothing left to take over) is not a failover:
 * no row, no record. Steps 3–4 are idempotent (the row's primary key is the incarnation key).
 *
 * Reconciliation sweep (at term start and every `sweepIntervalMs`): failovers whose record was
 * never written get it now; every incarnation that active runs/attempts still reference but
 * that is not registered is scheduled as if its znode had just gone. So a leader that dies at
 * any point loses nothing and repeats nothing. That includes an incarnation already failed
 * over: work can reach it after its failover transaction (it re-registered before its record
 * appeared, then exited on the record); that leftover work is taken over the same way.
 */

export interface FailoverCoordinatorOptions {
  pool: pg.Pool;
  session: ZkSession;
  paths: RegistryPaths;
  records: FailoverRecords;
  masters: MembersView;
  workers: MembersView;
  /** This master's incarnation key, as the leader (the `by` of records). */
  nodeKey: string;
  delayMs: number;
  /** Records and rows older than this are purged. */
  retentionMs: number;
  /** How often the sweep completes interrupted failovers and looks for unregistered incarnations that active work references. @defaultValue 10000 */
  sweepIntervalMs?: number;
  /** How often records and rows older than `retentionMs` are purged. @defaultValue 3600000 (1 hour) */
  purgeIntervalMs?: number;
  logger: Logger;
  /** Told after each completed failover (metrics). */
  onFailover?: (role: MemberRole, key: string, counts: { tasks: number; runs: number }) => void;
  /**
   * Test hook: kill this process (SIGKILL) right after the failover transaction commits and
   * before the record is written, to prove the next leader's sweep completes the failover.
   */
  crashBeforeRecord?: boolean;
}

export const DEFAULT_FAILOVER_COORDINATOR_OPTIONS = {
  sweepIntervalMs: 10_000,
  purgeIntervalMs: 3_600_000,
} as const satisfies Required<Pick<FailoverCoordinatorOptions, 'sweepIntervalMs' | 'purgeIntervalMs'>>;

type Outcome = 'failed-over' | 'graceful' | 'reregistered' | 'already-recorded';

export class FailoverCoordinator {
  /** Per key, the failover timer and the newest removed registration (czxid) it waits for. */
  private readonly pending = new Map<string, { timer: NodeJS.Timeout; czxid: bigint | null }>();
  private readonly lastSeen = new Map<string, Member>();
  /** Per worker key, the newest registration (czxid) seen removed and not yet failed over. */
  private readonly removedRegistrations = new Map<string, bigint>();
  private readonly opts: WithDefaults<
    FailoverCoordinatorOptions,
    typeof DEFAULT_FAILOVER_COORDINATOR_OPTIONS
  >;
  private readonly log: Logger;
  private term: LeadershipTerm | undefined;

  constructor(opts: FailoverCoordinatorOptions) {
    this.opts = withDefaults(opts, DEFAULT_FAILOVER_COORDINATOR_OPTIONS);
    this.log = opts.logger.child({ component: 'failover' });
  }

  /** Performs failover duties until the term ends. */
  async run(term: LeadershipTerm): Promise<void> {
    this.term = term;
    const epoch: LeaderEpoch = { clusterId: term.clusterId, czxid: Number(term.token) };
    const views = [this.opts.masters, this.opts.workers];
    for (const v of views) for (const m of v.list()) this.lastSeen.set(m.key, m);
    const onSeen = (m: Member) => this.lastSeen.set(m.key, m);
    const onRemoved = (m: Member) => {
      this.lastSeen.set(m.key, m);
      if (m.role === 'worker') {
        const known = this.removedRegistrations.get(m.key);
        if (known === undefined || m.czxid > known) this.removedRegistrations.set(m.key, m.czxid);
      }
      this.log.info(
        { role: m.role, node: m.key, czxid: m.czxid.toString(), delayMs: this.opts.delayMs },
        `${m.role} ${m.key} left the registry; failing it over in ${this.opts.delayMs} ms unless it re-registers`,
      );
      this.schedule(m.role, m.key, epoch, m.czxid);
    };
    for (const v of views) {
      v.on('added', onSeen);
      v.on('updated', onSeen);
      v.on('removed', onRemoved);
    }
    const sweep = () =>
      this.sweep(epoch).catch((err) => {
        if (!term.signal.aborted) this.log.warn({ err }, 'reconciliation sweep failed');
      });
    const purge = () =>
      this.purge().catch((err) => {
        if (!term.signal.aborted) this.log.warn({ err }, 'purging failover records failed');
      });
    await sweep();
    await purge();
    const sweepTimer = setInterval(sweep, this.opts.sweepIntervalMs);
    const purgeTimer = setInterval(purge, this.opts.purgeIntervalMs);
    try {
      await new Promise<void>((resolve) => {
        if (term.signal.aborted) resolve();
        else term.signal.addEventListener('abort', () => resolve(), { once: true });
      });
    } finally {
      clearInterval(sweepTimer);
      clearInterval(purgeTimer);
      for (const p of this.pending.values()) clearTimeout(p.timer);
      this.pending.clear();
      this.removedRegistrations.clear();
      for (const v of views) {
        v.off('added', onSeen);
        v.off('updated', onSeen);
        v.off('removed', onRemoved);
      }
      this.term = undefined;
    }
  }

  /** Completes interrupted failovers and schedules failovers of unreferenced-but-active incarnations. */
  async sweep(epoch: LeaderEpoch): Promise<void> {
    for (const row of await listUnrecordedFailovers(this.opts.pool)) {
      this.assertTerm();
      this.log.info(
        { node: row.key, role: row.role },
        'completing an interrupted failover: writing its record',
      );
      await this.writeRecord(row);
    }
    for (const ref of await listReferencedIncarnations(this.opts.pool)) {
      if (this.pending.has(ref.key) || this.isRegistered(ref.role, ref.key)) continue;
      // Already failed over, yet still referenced: work that reached the incarnation after its
      // failover transaction (it had re-registered before its record appeared, then exited on
      // the record). It is taken over like the rest, after the same delay.
      const recorded = (await this.opts.records.read(ref.role, ref.key)) !== undefined;
      this.log.info(
        { role: ref.role, node: ref.key },
        recorded
          ? `${ref.role} ${ref.key} was failed over but active work still references it; taking that work over in ${this.opts.delayMs} ms`
          : `${ref.role} ${ref.key} is referenced by active work but not registered; failing it over in ${this.opts.delayMs} ms`,
      );
      this.schedule(ref.role, ref.key, epoch);
    }
  }

  private isRegistered(role: MemberRole, key: string): boolean {
    return (role === 'master' ? this.opts.masters : this.opts.workers).get(key) !== undefined;
  }

  /**
   * Fails `key` over `delayMs` from now. `czxid`: the registration whose removal asks for it
   * (none from the sweep). A timer already pending is kept — unless this removal is of a newer
   * registration (it registered again within the delay and went again): that registration's
   * zombie gets the full delay from ITS removal, so the timer starts again from now.
   */
  private schedule(role: MemberRole, key: string, epoch: LeaderEpoch, czxid: bigint | null = null): void {
    const current = this.pending.get(key);
    if (current) {
      if (czxid === null || (current.czxid !== null && czxid <= current.czxid)) return;
      clearTimeout(current.timer);
      this.log.info(
        { role, node: key, czxid: czxid.toString(), delayMs: this.opts.delayMs },
        `${role} ${key} went again on a newer registration; its failover waits ${this.opts.delayMs} ms from now`,
      );
    }
    const timer = setTimeout(() => {
      this.pending.delete(key);
      this.failOver(role, key, epoch).catch((err) => {
        if (this.term?.signal.aborted) return;
        this.log.error({ err, role, node: key }, 'failover failed; the next sweep retries it');
      });
    }, this.opts.delayMs);
    this.pending.set(key, { timer, czxid: newest(current?.czxid ?? null, czxid) });
  }

  private assertTerm(): void {
    if (!this.term) throw new SchedError('NOT_LEADER', 'not the leader');
    this.term.check();
  }

  /** Fails one incarnation over (steps 2–4). */
  async failOver(role: MemberRole, key: string, epoch: LeaderEpoch): Promise<Outcome> {
    this.assertTerm();
    // The registrations this failover may take attempts from, named BEFORE the check below: if
    // the check then finds no znode, every one of them is gone for good (a registration that
    // comes back is a new znode with a larger czxid). A worker that registers again after the
    // check and is sent work before the transaction keeps that work.
    const removed = this.removedRegistrations.get(key) ?? null;
    this.removedRegistrations.delete(key);
    const upTo =
      role === 'worker' ? newest(removed, await newestAttemptRegistration(this.opts.pool, key)) : null;
    // Ask ZooKeeper itself, not only the view: a re-registration must cancel the failover.
    if (await this.opts.session.exists(this.opts.paths.member(role, key))) {
      this.log.info({ role, node: key }, `${role} ${key} is registered again; no failover`);
      return 'reregistered';
    }
    const liveMasters = this.opts.masters
      .list()
      .map((m) => m.key)
      .filter((k) => k !== key)
      .sort();
    const existing = await this.opts.records.read(role, key);
    if (existing) {
      await markRecorded(this.opts.pool, key);
      // Work that reached it after its failover transaction (a re-registered zombie that exited
      // when its record appeared) would otherwise stay active forever: take it over too.
      const left = await withTransaction(this.opts.pool, async (tx) => {
        await lockLeaderEpoch(tx, epoch);
        const taken = await this.takeOver(tx, role, key, liveMasters, upTo);
        await notifyOwners(tx, taken.wake);
        return taken;
      });
      this.logLeftToNewerRegistration(key, left.newer, upTo);
      if (left.tasks > 0 || left.runs > 0) {
        this.log.warn(
          { role, node: key, tasks: left.tasks, runs: left.runs, epoch: epoch.czxid },
          `took over work left on ${role} ${key} after its failover: ${left.tasks} task attempt(s) re-queued, ${left.runs} run(s) re-assigned`,
        );
      }
      return 'already-recorded';
    }
    const incarnation = this.describe(role, key);
    const graceful = this.lastSeen.get(key)?.heartbeat.state === 'DRAINING';

    const result = await withTransaction(this.opts.pool, async (tx) => {
      await lockLeaderEpoch(tx, epoch);
      const done = await getFailover(tx, key);
      if (done) {
        // Failed over before, record not yet written (the sweep writes it): take over anything
        // that reached it since, then go on to the record.
        const taken = await this.takeOver(tx, role, key, liveMasters, upTo);
        await notifyOwners(tx, taken.wake);
        return { row: done, fresh: false, newer: taken.newer };
      }
      const { tasks, runs, wake, newer } = await this.takeOver(tx, role, key, liveMasters, upTo);
      if (graceful && tasks === 0 && runs === 0 && newer === 0) return { row: null, fresh: false, newer };
      await insertFailover(tx, incarnation, epoch, this.opts.nodeKey);
      await setFailoverCounts(tx, key, tasks, runs);
      await notifyOwners(tx, wake);
      return { row: await getFailover(tx, key), fresh: true, newer };
    });
    this.logLeftToNewerRegistration(key, result.newer, upTo);

    if (!result.row) {
      this.log.info({ role, node: key }, `${role} ${key} deregistered gracefully; nothing to fail over`);
      return 'graceful';
    }
    if (result.fresh) {
      this.log.warn(
        { role, node: key, tasks: result.row.tasks, runs: result.row.runs, epoch: epoch.czxid },
        `failed over ${role} ${key}: ${result.row.tasks} task attempt(s) re-queued, ${result.row.runs} run(s) re-assigned`,
      );
    }
    if (this.opts.crashBeforeRecord) {
      this.log.error('test hook: crashing between the failover transaction and the record write');
      process.kill(process.pid, 'SIGKILL');
    }
    await this.writeRecord(result.row);
    this.opts.onFailover?.(role, key, { tasks: result.row.tasks, runs: result.row.runs });
    return 'failed-over';
  }

  /**
   * Step 3's workload part: a worker's active attempts of registrations up to `upTo` become
   * failed-over (`newer` counts those of newer registrations, left alone), a master's active
   * runs move.
   */
  private async takeOver(
    tx: Db,
    role: MemberRole,
    key: string,
    liveMasters: string[],
    upTo: bigint | null,
  ): Promise<{ tasks: number; runs: number; newer: number; wake: Map<string, number[]> }> {
    const wake = new Map<string, number[]>();
    const add = (owner: string | null, runId: number) => {
      const k = owner ?? '*';
      wake.set(k, [...(wake.get(k) ?? []), runId]);
    };
    if (role === 'worker') {
      // No registration known (no removal seen, no attempt recording one): only attempts that
      // record none are the failed incarnation's for sure.
      const bound = upTo ?? 0n;
      const taken = await failOverWorkerAttempts(tx, key, bound);
      for (const t of taken) add(t.owner, t.runId);
      const newer = await countAttemptsOfNewerRegistration(tx, key, bound);
      return { tasks: taken.length, runs: 0, newer, wake };
    }
    const moved = await reassignRunsOf(tx, key, liveMasters);
    for (const m of moved) add(m.owner, m.runId);
    return { tasks: 0, runs: moved.length, newer: 0, wake };
  }

  private logLeftToNewerRegistration(key: string, newer: number, upTo: bigint | null): void {
    if (newer === 0) return;
    this.log.info(
      { role: 'worker', node: key, tasks: newer, czxid: (upTo ?? 0n).toString() },
      `worker ${key} registered again before its failover: ${newer} task attempt(s) dispatched to its new registration are left to it (taken over if that registration goes too)`,
    );
  }

  private async writeRecord(row: FailoverRow): Promise<void> {
    this.assertTerm();
    const { created } = await this.opts.records.write(row.key, {
      role: row.role,
      address: row.address,
      startTime: row.startTime,
      pid: row.pid,
      sessionId: row.sessionId,
      failedOverAt: row.failedOverAt.toISOString(),
      by: row.leaderKey,
      tasks: row.tasks,
      runs: row.runs,
    });
    await markRecorded(this.opts.pool, row.key);
    if (created) {
      this.log.info(
        { role: row.role, node: row.key, path: this.opts.paths.failoverRecord(row.role, row.key) },
        'FAILOVER_FINISH_NODES record written',
      );
    }
  }

  private describe(role: MemberRole, key: string): FailedIncarnation {
    const seen = this.lastSeen.get(key);
    const parsed = parseIncarnationKey(key);
    return {
      key,
      role,
      address: parsed.address,
      startTime: parsed.startTime,
      pid: seen?.heartbeat.pid ?? null,
      sessionId: seen?.sessionId ?? null,
    };
  }

  private async purge(): Promise<void> {
    this.assertTerm();
    const removed = await this.opts.records.purge(this.opts.retentionMs);
    const rows = await purgeFailovers(this.opts.pool, this.opts.retentionMs);
    if (removed.length > 0 || rows > 0) {
      this.log.info({ records: removed.length, rows }, 'purged failover records older than the retention');
    }
  }
}

/** The larger of two czxids, either of which may be unknown. */
function newest(a: bigint | null, b: bigint | null): bigint | null {
  if (a === null) return b;
  if (b === null) return a;
  return a > b ? a : b;
}
