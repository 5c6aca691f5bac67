import type { TaskDefinition, WorkflowDefinition } from '@sched/store';
import type { WorkerRouter } from '../routing/worker-router.js';
import type { WorkerView } from '../routing/worker-view.js';
import type { DispatchAction } from './dag-planner.js';
import type { DispatchTarget, DriveAttempt, DriveRun, NewDispatch } from './run-drive-queries.js';

/**
 * Dispatch targets: where an attempt goes. Owns turning a planned dispatch (routing over the live
 * workers, one attempt per shard for sharding-broadcast, the fallbacks in the strategy's order) or
 * an existing attempt row (`pending`, or `dispatched` and sent again) into a {@link DispatchJob}
 * with an explicit {@link Placement}, and moving a job to its next candidate worker.
 *
 * Every move is fenced on the run's owner, the worker key the row has and the dispatch seq the
 * mover knows (`reassignAttempt`, injected as {@link MoveAttempt}): a report, the leader's
 * failover or a newer owner that got there first wins (docs/design.md#runs).
 *
 * An attempt is only ever sent to the registration (czxid) its row records; one recorded for a
 * registration that is gone is moved to the worker's current one first (docs/failover.md).
 */

/** A live worker as the driver gets it: the router's view plus, when known, its registration. */
export type RegisteredWorker = WorkerView & {
  /** czxid of the worker's registration znode (`MembersView` member `czxid`). */
  czxid?: bigint;
};

/**
 * Where an attempt stands before it is sent:
 * - `assigned`: its row names `target` (at the job's seq), so it may be sent there; `fallbacks` are
 *   tried in order when `target` refuses it or cannot be reached. `copyMayBeThere`: the target may
 *   already hold a copy (a resend of a row dispatched to it — an earlier owner's request, or one
 *   whose answer was lost — or a move to the same worker under a newer registration); moving it
 *   away then needs the worker's word first (delivery-ledger.ts).
 * - `to-move`: its row names no registration it may be sent to (`from`: the worker key on the row,
 *   null for a `pending` row): it is moved to `candidates[0]` first (fenced on `from` and the seq),
 *   the rest being its fallbacks; with no candidate left it goes back to `pending`.
 */
export type Placement =
  | AssignedPlacement
  | { kind: 'to-move'; from: string | null; candidates: DispatchTarget[] };

export interface AssignedPlacement {
  kind: 'assigned';
  target: DispatchTarget;
  fallbacks: DispatchTarget[];
  copyMayBeThere: boolean;
}

/** A new attempt as planned: its row, its run and task, and the workers to try after the first. */
export interface PlannedDispatch {
  d: NewDispatch;
  run: DriveRun;
  task: TaskDefinition;
  fallbacks: DispatchTarget[];
}

/** An attempt to send: what its request needs, where it stands, and its row's `dispatch_seq`. */
export interface DispatchJob {
  attemptId: number;
  run: DriveRun;
  task: TaskDefinition;
  taskName: string;
  attempt: number;
  shardIndex: number;
  shardTotal: number;
  placement: Placement;
  /** The row's `dispatch_seq` for the current placement (sent with the dispatch and any revoke). */
  seq: number;
}

/** A job whose row names the registration it is sent to. */
export type AssignedJob = DispatchJob & { placement: AssignedPlacement };

export function isAssigned(job: DispatchJob): job is AssignedJob {
  return job.placement.kind === 'assigned';
}

/**
 * Moves an attempt from the worker key its row has (null: none) to `to` (null: back to `pending`),
 * fenced on its run's owner and on `fromSeq`. Returns the new seq, or null when the row moved on.
 */
export type MoveAttempt = (
  attemptId: number,
  from: string | null,
  to: DispatchTarget | null,
  fromSeq: number,
) => Promise<number | null>;

/**
 * Moves a job to its next candidate (the first fallback of an assigned job, the first candidate
 * of a job to move), or back to `pending` when none is left. `assigned`: send it (placement and
 * seq updated); `pending`: its run is to be driven again later; `moved-on`: a report or the
 * failover got there first — leave it.
 */
export async function moveToNext(
  job: DispatchJob,
  move: MoveAttempt,
): Promise<'assigned' | 'pending' | 'moved-on'> {
  const p = job.placement;
  const from = p.kind === 'assigned' ? p.target.key : p.from;
  const [next = null, ...rest] = p.kind === 'assigned' ? p.fallbacks : p.candidates;
  const seq = await move(job.attemptId, from, next, job.seq);
  if (seq === null) return 'moved-on';
  job.seq = seq;
  if (next === null) {
    job.placement = { kind: 'to-move', from: null, candidates: [] };
    return 'pending';
  }
  // The same worker under a newer registration may hold the old copy; another worker does not.
  job.placement = { kind: 'assigned', target: next, fallbacks: rest, copyMayBeThere: next.key === from };
  return 'assigned';
}

/**
 * The jobs for the attempt rows just inserted from `planned` (matched on run, task, shard and
 * attempt; a row not inserted — a run no longer owned, a duplicate — has none), and the runs of
 * those inserted without a worker (`pending`: retried later).
 */
export function jobsOfInserted(
  planned: readonly PlannedDispatch[],
  rows: readonly {
    id: number;
    runId: number;
    taskName: string;
    attempt: number;
    shardIndex: number;
    dispatchSeq: number;
  }[],
): { jobs: DispatchJob[]; unrouted: number[] } {
  const byKey = new Map(planned.map((n) => [attemptKey(n.d), n]));
  const jobs: DispatchJob[] = [];
  const unrouted: number[] = [];
  for (const row of rows) {
    const n = byKey.get(attemptKey(row));
    if (!n) continue;
    if (!n.d.worker) {
      unrouted.push(row.runId);
      continue;
    }
    jobs.push({
      attemptId: row.id,
      run: n.run,
      task: n.task,
      taskName: row.taskName,
      attempt: row.attempt,
      shardIndex: row.shardIndex,
      shardTotal: n.d.shardTotal,
      placement: { kind: 'assigned', target: n.d.worker, fallbacks: n.fallbacks, copyMayBeThere: false },
      seq: row.dispatchSeq,
    });
  }
  return { jobs, unrouted };
}

function attemptKey(a: { runId: number; taskName: string; shardIndex: number; attempt: number }): string {
  return `${a.runId}|${a.taskName}|${a.shardIndex}|${a.attempt}`;
}

/** Routing and resends over one snapshot of the live workers (one per batch). */
export class DispatchTargets {
  private readonly registrations: Map<string, bigint | null>;

  constructor(
    private readonly router: WorkerRouter,
    private readonly workers: readonly RegisteredWorker[],
  ) {
    this.registrations = new Map(workers.map((w) => [w.key, w.czxid ?? null]));
  }

  /** A worker as a target, on the registration this snapshot knows for it (null: unknown). */
  target(w: WorkerView): DispatchTarget {
    return {
      address: w.address,
      startTime: w.startTime,
      key: w.key,
      czxid: this.registrations.get(w.key) ?? null,
    };
  }

  /** New attempt rows for one planned dispatch (one per shard for sharding-broadcast). */
  route(
    run: DriveRun,
    def: WorkflowDefinition,
    task: TaskDefinition,
    action: { taskName: string; attempt: number; shard?: { index: number; total: number } },
  ): PlannedDispatch[] {
    const base = { runId: run.id, taskName: task.name, attempt: action.attempt };
    const plan = this.router.route(this.workers, {
      strategy: task.routing,
      group: task.workerGroup,
      scope: `${def.name}/${task.name}`,
    });
    if (plan.mode === 'broadcast') {
      if (action.shard) {
        // Re-dispatch of one shard: any worker of the group, the shard's own position first.
        const list = plan.shards.map((s) => this.target(s.worker));
        const start = list.length === 0 ? 0 : action.shard.index % list.length;
        const ordered = [...list.slice(start), ...list.slice(0, start)];
        const { index, total } = action.shard;
        const d = { ...base, shardIndex: index, shardTotal: total, worker: ordered[0] ?? null };
        return [{ d, run, task, fallbacks: ordered.slice(1) }];
      }
      if (plan.shards.length === 0) {
        return [{ d: { ...base, shardIndex: 0, shardTotal: 1, worker: null }, run, task, fallbacks: [] }];
      }
      // Broadcast: each shard belongs to its worker; no fallback (it would run two shards on one worker).
      return plan.shards.map((s) => ({
        d: { ...base, shardIndex: s.shardIndex, shardTotal: s.shardTotal, worker: this.target(s.worker) },
        run,
        task,
        fallbacks: [],
      }));
    }
    const targets = plan.targets.map((w) => this.target(w));
    const shard = action.shard ?? { index: 0, total: 1 };
    const d = { ...base, shardIndex: shard.index, shardTotal: shard.total, worker: targets[0] ?? null };
    return [{ d, run, task, fallbacks: targets.slice(1) }];
  }

  /** New attempt rows for a run's planned dispatches (`tasks`: its definition's tasks by name). */
  routeAll(
    run: DriveRun,
    def: WorkflowDefinition,
    tasks: ReadonlyMap<string, TaskDefinition>,
    actions: readonly DispatchAction[],
  ): PlannedDispatch[] {
    return actions.flatMap((action) =>
      this.route(run, def, tasks.get(action.taskName) as TaskDefinition, action),
    );
  }

  /**
   * The jobs for a run's existing rows to send now: every `pending` one, and the `dispatched` ones
   * `resend` selects (asked once for each row of a task the definition has). `unrouted`: a
   * `pending` one found no worker (its run is to be driven again later).
   */
  resendsOf(
    run: DriveRun,
    def: WorkflowDefinition,
    tasks: ReadonlyMap<string, TaskDefinition>,
    attempts: readonly DriveAttempt[],
    resend: (a: DriveAttempt) => boolean,
  ): { jobs: DispatchJob[]; unrouted: boolean } {
    const jobs: DispatchJob[] = [];
    let unrouted = false;
    for (const a of attempts) {
      const task = tasks.get(a.taskName);
      if (!task) continue;
      const again = resend(a);
      if (a.state === 'pending' || (again && a.state === 'dispatched' && a.workerKey)) {
        const job = this.resendOf(run, def, task, a);
        if (job) jobs.push(job);
        else if (a.state === 'pending') unrouted = true;
      }
    }
    return { jobs, unrouted };
  }

  /**
   * The job for an existing row sent again: a `pending` one (routed now, null when no worker is
   * free), or a `dispatched` one (to the registration its row records, or moved first to its
   * worker's current registration; null when its worker is gone: the failover's business).
   */
  resendOf(
    run: DriveRun,
    def: WorkflowDefinition,
    task: TaskDefinition,
    a: DriveAttempt,
  ): DispatchJob | null {
    const common = {
      attemptId: a.id,
      run,
      task,
      taskName: a.taskName,
      attempt: a.attempt,
      shardIndex: a.shardIndex,
      shardTotal: a.shardTotal,
      seq: a.dispatchSeq,
    };
    if (a.state === 'dispatched' && a.workerKey && a.workerAddress) {
      const w = this.workers.find((x) => x.key === a.workerKey);
      // A worker that is gone is the failover coordinator's business, not the driver's.
      if (!w) return null;
      const now = this.target(w);
      if (a.workerCzxid !== null && now.czxid !== null && now.czxid !== a.workerCzxid) {
        // Same incarnation, new registration (it lost its session and came back). Sent as it
        // is, the attempt would run under the new registration while the leader's failover of
        // the old one (which it belongs to on its row) may take it over: move it first.
        return { ...common, placement: { kind: 'to-move', from: a.workerKey, candidates: [now] } };
      }
      // Sent for the registration its row records (the worker refuses it if it is on another one
      // now), even when this master's view does not know that registration.
      const target = { ...now, czxid: a.workerCzxid };
      return { ...common, placement: { kind: 'assigned', target, fallbacks: [], copyMayBeThere: true } };
    }
    const [first] = this.route(run, def, task, {
      taskName: a.taskName,
      attempt: a.attempt,
      shard: { index: a.shardIndex, total: a.shardTotal },
    });
    if (!first?.d.worker) return null;
    const candidates = [first.d.worker, ...first.fallbacks];
    return { ...common, placement: { kind: 'to-move', from: null, candidates } };
  }
}
