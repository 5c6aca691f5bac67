import { dialAddress, type PeerMap } from '@sched/core';
import {
  type AttemptSnapshotAnswer,
  attemptSnapshotSchema,
  errorAnswerSchema,
  PROTOCOL_HEADER,
  PROTOCOL_VERSION,
  WireError,
} from '@sched/protocol';

/**
 * What a worker said about one attempt (`GET /v1/attempts/{id}?worker=KEY`, docs/transport.md):
 * - `known`: its snapshot (state, and the result once final);
 * - `unknown`: this incarnation does not know the attempt (404 `NOT_FOUND`);
 * - `no-answer`: nothing usable — unreachable, timed out, another incarnation at that address
 *   (409 `WRONG_INCARNATION`), an answer in an unknown shape. Says nothing about the attempt.
 */
export type SnapshotAnswer =
  | { kind: 'known'; snapshot: AttemptSnapshotAnswer }
  | { kind: 'unknown' }
  | { kind: 'no-answer'; reason: string };

/** Asks the worker incarnation `workerKey`, registered at `address`, about one attempt. */
export type AttemptSnapshotQuery = (
  address: string,
  workerKey: string,
  attemptId: string,
) => Promise<SnapshotAnswer>;

export interface HttpAttemptSnapshotOptions {
  /** The cluster secret (`Authorization: Bearer`). */
  secret: string;
  /** Registered worker address → address to dial (`node.peerMap`). */
  peerMap?: PeerMap;
  /** Per-request deadline. @defaultValue 5000 */
  timeoutMs?: number;
}

/**
 * `GET /v1/attempts/{id}?worker=KEY` over HTTP, the answer validated with the protocol's
 * `attemptSnapshotSchema` (never cast). The `worker` parameter makes any other incarnation that
 * answers at the address refuse (409) instead of saying it does not know the attempt.
 */
export function httpAttemptSnapshots(opts: HttpAttemptSnapshotOptions): AttemptSnapshotQuery {
  const timeoutMs = opts.timeoutMs ?? 5_000;
  const auth = `Bearer ${opts.secret}`;
  return async (address, workerKey, attemptId) => {
    const target = dialAddress(opts.peerMap, address);
    const url = `http://${target}/v1/attempts/${encodeURIComponent(attemptId)}?worker=${encodeURIComponent(workerKey)}`;
    let status: number;
    let text: string;
    try {
      const res = await fetch(url, {
        headers: { authorization: auth, [PROTOCOL_HEADER]: String(PROTOCOL_VERSION) },
        signal: AbortSignal.timeout(timeoutMs),
      });
      status = res.status;
      text = await res.text();
    } catch (err) {
      return {
        kind: 'no-answer',
        reason: `worker ${address} could not be reached: ${(err as Error).message}`,
      };
    }
    let body: unknown;
    try {
      body = JSON.parse(text);
    } catch {
      body = undefined;
    }
    if (status === 200) {
      const parsed = attemptSnapshotSchema.safeParse(body);
      if (parsed.success) return { kind: 'known', snapshot: parsed.data };
      return {
        kind: 'no-answer',
        reason: `worker ${address} answered attempt ${attemptId} in an unknown shape`,
      };
    }
    const err = errorAnswerSchema.safeParse(body);
    if (status === 404 && err.success && err.data.error.code === WireError.NotFound)
      return { kind: 'unknown' };
    const what = err.success ? `${err.data.error.code} ${err.data.error.message}` : text.slice(0, 200);
    return { kind: 'no-answer', reason: `worker ${address} answered ${status} ${what}` };
  };
}
