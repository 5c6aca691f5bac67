import { type Clock, HttpError, type Logger, type PeerMap } from '@sched/core';
import type { MembersView, RegistryPaths, ZkSession } from '@sched/registry';
import type pg from 'pg';

/**
 * What the REST API needs from its master: a narrow view of `MasterNode` (so the routes can be
 * tested with any object that has these fields). Fields are read at request time: the HTTP
 * endpoint is up before the registry session exists, and requests then get 503 STARTING.
 */
export interface ApiNode {
  readonly key: string;
  readonly address: string;
  readonly pool: pg.Pool;
  readonly session: ZkSession | undefined;
  readonly paths: RegistryPaths | undefined;
  readonly mastersView: MembersView | undefined;
  readonly isLeader: boolean;
  leaseValid(): boolean;
  readonly driver: { wake(runIds: number[]): void } | undefined;
}

export interface ApiDeps {
  node: ApiNode;
  /** The cluster secret, to read task logs from workers. */
  secret: string;
  /** Rewrites of worker addresses before dialling them (`node.peerMap`). */
  peerMap?: PeerMap;
  logger: Logger;
  clock?: Clock;
  /** How long trigger/re-run wait for a master to claim the command and report the run id. @defaultValue 5000 */
  commandWaitMs?: number;
}

/** The registry parts of the node, or 503 while the master is still starting. */
export function registryOf(node: ApiNode): { session: ZkSession; paths: RegistryPaths } {
  if (!node.session || !node.paths) {
    throw new HttpError(503, 'STARTING', 'the master is starting; try again in a moment');
  }
  return { session: node.session, paths: node.paths };
}
