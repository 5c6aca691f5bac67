/**
 * The version of the master ↔ worker wire contract (this package). Every request between them
 * carries it in the `X-Sched-Protocol` header; a node refuses a request of another version with
 * 400 `PROTOCOL_MISMATCH` naming both versions, instead of misreading it (docs/transport.md).
 * Raise it whenever a message changes in a way an older peer would misread.
 */
export const PROTOCOL_VERSION = 1;

/** The header that carries `PROTOCOL_VERSION` (HTTP header names are case-insensitive). */
export const PROTOCOL_HEADER = 'x-sched-protocol';

/**
 * Why a request's protocol header is not accepted, in words for the operator; null when it is.
 * A missing header is a peer from before the header existed (version 0).
 */
export function protocolMismatch(
  header: string | string[] | undefined,
  peer: 'master' | 'worker',
): string | null {
  const text = Array.isArray(header) ? header[0] : header;
  const theirs = text === undefined ? 0 : Number(text);
  if (theirs === PROTOCOL_VERSION) return null;
  const shown = text === undefined ? '0 (no X-Sched-Protocol header)' : JSON.stringify(text);
  const self = peer === 'master' ? 'worker' : 'master';
  return `the ${peer} speaks sched protocol ${shown}, this ${self} speaks ${PROTOCOL_VERSION}; run the same sched version on masters and workers`;
}
