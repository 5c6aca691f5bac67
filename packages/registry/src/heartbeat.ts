import { z } from 'zod';

/**
 * Heartbeat JSON of a registered master or worker (docs/design.md#znodes). Fields may be added by
 * later versions, never renamed; unknown fields are kept when read.
 */
export const nodeStateSchema = z.enum(['NORMAL', 'BUSY', 'DRAINING']);
export type NodeState = z.infer<typeof nodeStateSchema>;

export const masterHeartbeatSchema = z.looseObject({
  /** `host:port` */
  address: z.string().min(1),
  /** Epoch ms the process started (as in the incarnation key). */
  startTime: z.number().int().nonnegative(),
  pid: z.number().int().positive(),
  /** sched version. */
  version: z.string(),
  /** CPU usage of the host, 0..1. */
  cpu: z.number().nonnegative(),
  /** Memory usage of the host, 0..1. */
  memory: z.number().nonnegative(),
  /** 1-minute load average divided by the number of CPUs. */
  load: z.number().nonnegative(),
  state: nodeStateSchema,
  /** ISO 8601 with milliseconds. */
  reportedAt: z.string(),
  /**
   * Masters: whether this master reaches PostgreSQL (absent from masters before it existed). A
   * master cut from it steps out only while another master says `up` (docs/operations.md).
   */
  db: z.enum(['up', 'down']).optional(),
});
export type MasterHeartbeat = z.infer<typeof masterHeartbeatSchema>;

export const workerHeartbeatSchema = masterHeartbeatSchema.extend({
  groups: z.array(z.string()),
  weight: z.number().nonnegative(),
  /** Process slots (shell and script tasks at once). */
  capacity: z.number().int().nonnegative(),
  /** Process slots in use now (shell and script tasks running). */
  running: z.number().int().nonnegative(),
  /** Accepted attempts waiting for a slot (absent from workers before the backlog existed). */
  queued: z.number().int().nonnegative().optional(),
  /** Most attempts that may wait for a slot. */
  backlog: z.number().int().nonnegative().optional(),
});
export type WorkerHeartbeat = z.infer<typeof workerHeartbeatSchema>;

export type Heartbeat = MasterHeartbeat | WorkerHeartbeat;
