import type { Db } from '../db.js';

/**
 * The leader epoch (fencing token of a leadership term, docs/design.md#fencing). Leader-only
 * transactions check it with the master's `lockLeaderEpoch` (failover-queries.ts).
 */

/** Records a new term; true only when `epoch` is newer than the recorded one. */
export async function advanceLeaderEpoch(db: Db, epoch: number, leaderKey: string): Promise<boolean> {
  const { rowCount } = await db.query(
    `UPDATE cluster_state SET leader_epoch = $1, leader_key = $2, updated_at = now() WHERE id AND leader_epoch < $1`,
    [epoch, leaderKey],
  );
  return (rowCount ?? 0) === 1;
}
