import { z } from 'zod';
import { FINAL_ATTEMPT_STATES } from './attempt-result.js';

/**
 * The worker's answer to `GET /v1/attempts/{id}` (docs/transport.md): what it knows about one
 * attempt now. A master reads it with {@link attemptSnapshotSchema} (never cast) when it asks a
 * live worker about an attempt whose reports have not arrived (the attempt reconciler,
 * docs/design.md#reconciliation): a finished attempt's `result` is then applied as if reported.
 */

/** Every state an attempt has on a worker (`AttemptState`), for validation. */
export const WORKER_ATTEMPT_STATES = ['queued', 'running', ...FINAL_ATTEMPT_STATES] as const;

const isoTime = z.string().refine((s) => !Number.isNaN(Date.parse(s)), 'expected an ISO 8601 time');

/** A finished attempt's result as a worker sends it (`AttemptResult`); unknown fields are kept. */
export const wireAttemptResultSchema = z.looseObject({
  attemptId: z.string(),
  state: z.enum(FINAL_ATTEMPT_STATES),
  exitCode: z.number().int().nullable(),
  signal: z.string().nullable(),
  httpStatus: z.number().int().nullable(),
  startedAt: isoTime,
  endedAt: isoTime,
  durationMs: z.number().nonnegative(),
  logTail: z.string(),
  logBytes: z.number().int().nonnegative(),
  logTruncated: z.boolean(),
  error: z.string().nullable(),
});

/** `GET /v1/attempts/{id}` → 200: the attempt's snapshot (`AttemptSnapshot`); `result` is set once it is final. */
export const attemptSnapshotSchema = z
  .looseObject({
    attemptId: z.string(),
    state: z.enum(WORKER_ATTEMPT_STATES),
    startedAt: isoTime.nullable(),
    pgid: z.number().int().nullable().optional(),
    result: wireAttemptResultSchema.nullable(),
  })
  .refine((s) => (s.state === 'queued' || s.state === 'running') === (s.result === null), {
    path: ['result'],
    message: 'expected a result exactly when the state is final',
  });
export type AttemptSnapshotAnswer = z.infer<typeof attemptSnapshotSchema>;
