/**
 * The status of sched's ZooKeeper session as the registry sees it (Curator's connection
 * states, with LOST decided locally instead of waiting for the server to say EXPIRED).
 *
 * `generation` counts ZooKeeper sessions of one `ZkSession`: 1 for the first, +1 each time a
 * brand-new session replaces a lost one. Anything tied to a session (ephemeral nodes,
 * watches, leadership, locks) remembers the generation it was made in.
 */
export type SessionStatus =
  /** Not yet connected for the first time. */
  | { readonly kind: 'CONNECTING' }
  /** The first session is established and the server answers. */
  | { readonly kind: 'CONNECTED'; readonly sessionId: string; readonly generation: number }
  /**
   * No reply for 2/3 of the session timeout (`silent`), or the socket dropped
   * (`disconnected`). The session may still be alive: keep what runs, start nothing new.
   */
  | {
      readonly kind: 'SUSPENDED';
      readonly sessionId: string;
      readonly generation: number;
      readonly reason: 'silent' | 'disconnected';
    }
  /**
   * The session is gone: a whole session timeout without a reply (`lease-expired`), or the
   * server said EXPIRED (`expired`). Final for that session; a new one is being made.
   */
  | {
      readonly kind: 'LOST';
      readonly sessionId: string;
      readonly generation: number;
      readonly reason: 'lease-expired' | 'expired';
    }
  /**
   * The server answers again. `newSession: false`: the same session survived a suspension.
   * `newSession: true`: a brand-new session after LOST (ephemerals and watches must be re-made).
   */
  | {
      readonly kind: 'RECONNECTED';
      readonly sessionId: string;
      readonly generation: number;
      readonly newSession: boolean;
    }
  /** Closed by its owner. Final. */
  | { readonly kind: 'CLOSED' };

export type SessionStatusKind = SessionStatus['kind'];

/** Whether the session is answering (CONNECTED or RECONNECTED). */
export function isLive(
  status: SessionStatus,
): status is Extract<SessionStatus, { kind: 'CONNECTED' | 'RECONNECTED' }> {
  return status.kind === 'CONNECTED' || status.kind === 'RECONNECTED';
}
