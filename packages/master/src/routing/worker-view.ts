/**
 * What the router knows about a live worker: its registry heartbeat (docs/design.md#znodes), reduced to
 * the fields routing reads. The master builds these from `/sched/workers/*`; the router never
 * talks to ZooKeeper itself, so every strategy is a pure function of this list plus its own
 * per-scope memory.
 */
export type WorkerState = 'NORMAL' | 'BUSY' | 'DRAINING';

export interface WorkerView {
  /** Incarnation key `host:port_startTime`. */
  key: string;
  /** `host:port`, where the worker's HTTP endpoint listens. */
  address: string;
  /** Epoch ms when the worker process started. */
  startTime: number;
  /** Worker groups this worker serves. */
  groups: readonly string[];
  /** Configured weight for weighted round-robin (heartbeat `weight`); 0 means "send me nothing by weight". */
  weight: number;
  /** Maximum concurrent tasks. */
  capacity: number;
  /** Tasks running at the last heartbeat (the master may add what it dispatched since). */
  running: number;
  state: WorkerState;
  /** CPU usage as a fraction 0..1. */
  cpu: number;
  /** Memory usage as a fraction 0..1. */
  memory: number;
  /** 1-minute load average divided by the number of cores (1 = every core busy). */
  load: number;
}

/** Whether the worker may be offered new work at all: BUSY and DRAINING workers are skipped by every strategy. */
export function isAcceptingWork(w: WorkerView): boolean {
  return w.state === 'NORMAL';
}

/** Whether the worker has a free slot according to its last heartbeat. */
export function hasFreeCapacity(w: WorkerView): boolean {
  return w.running < w.capacity;
}

/**
 * The order every master sees the same candidate set in: by address, then key. Strategies that
 * are positional (first, last, round-robin, sharding-broadcast) are only meaningful over a stable
 * order, and two masters must agree on shard indexes.
 */
export function compareWorkers(a: WorkerView, b: WorkerView): number {
  if (a.address !== b.address) return a.address < b.address ? -1 : 1;
  if (a.key !== b.key) return a.key < b.key ? -1 : 1;
  return 0;
}
