import { Gauge, type Registry } from 'prom-client';
import type { SessionStatusKind } from './session-status.js';

/** Every state a registry session can be in, so each has a series (0 or 1) from the first scrape. */
export const SESSION_STATES: readonly SessionStatusKind[] = [
  'CONNECTING',
  'CONNECTED',
  'SUSPENDED',
  'LOST',
  'RECONNECTED',
  'CLOSED',
];

/**
 * `sched_registry_session_state{state}`: 1 for the state the node's ZooKeeper session is in now,
 * 0 for the others (read at scrape time). Alert on `sched_registry_session_state{state="SUSPENDED"} == 1`
 * lasting, or on any LOST.
 */
export function registerSessionStateGauge(
  registry: Registry,
  status: () => SessionStatusKind | undefined,
): Gauge<'state'> {
  return new Gauge({
    name: 'sched_registry_session_state',
    help: 'State of the ZooKeeper session (1 = current state)',
    labelNames: ['state'],
    registers: [registry],
    collect() {
      const current = status() ?? 'CONNECTING';
      for (const s of SESSION_STATES) this.set({ state: s }, s === current ? 1 : 0);
    },
  });
}
