import { z } from 'zod';

/**
 * The worker's answers to the master's requests, as the master reads them. Parsed with these
 * schemas (never cast): a worker of another version that answers in another shape is a clear
 * error, not a misread.
 */

const wireErrorBody = z.object({ code: z.string(), message: z.string() });

/** One attempt of a batch dispatch (`POST /v1/attempts/batch`): its HTTP-like status and outcome. */
export const dispatchResultSchema = z.looseObject({
  status: z.number().int(),
  attemptId: z.string().optional(),
  /** true: started or queued now; false: the worker already had it (a repeated dispatch). */
  accepted: z.boolean().optional(),
  state: z.string().optional(),
  error: wireErrorBody.optional(),
});
export type DispatchResult = z.infer<typeof dispatchResultSchema>;

/** `POST /v1/attempts/batch` → 200 `{ results }`, in the order of the attempts sent. */
export const dispatchBatchAnswerSchema = z.object({ results: z.array(dispatchResultSchema) });

/** `POST /v1/attempts/revoke` → 200 `{ results: [{ attemptId, state }] }`; `state` is `revoked` or the attempt's state there. */
export const revokeAnswerSchema = z.object({
  results: z.array(z.object({ attemptId: z.string(), state: z.string() })),
});

/** Any refusal: `{ error: { code, message } }`. */
export const errorAnswerSchema = z.object({ error: wireErrorBody });

/** What a worker answered for one attempt of a batch, as the master's run driver uses it. */
export type DispatchAnswer =
  | { attemptId: string; outcome: 'accepted' }
  /** The worker already had this attempt (a repeated dispatch); it is running or done there. */
  | { attemptId: string; outcome: 'duplicate' }
  /**
   * Busy, draining, another incarnation or registration, revoked: `code` is a `WireErrorCode`
   * (compare with `WireError.*`), or `NO_ANSWER` / `HTTP_<status>` when the worker said nothing usable.
   */
  | { attemptId: string; outcome: 'refused'; code: string; message: string };
