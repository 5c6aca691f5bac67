import type { Db } from '../db.js';

/**
 * The leader epoch (fencing token of a leadership term, docs/design.md#fencing): the czxid of the
 * term's candidate znode, qualified by the id of the ZooKeeper data it comes from. Leader-only
 * transactions check it with the master's `lockLeaderEpoch` (failover-queries.ts); the master's
 * `claimLeaderEpoch` (leader-epoch.ts) decides between advancing and taking over
 * (docs/decisions/0006-leader-epoch-zookeeper-generation.md).
 */
export interface LeaderEpoch {
  /** The ZooKeeper data's id (`{root}/cluster-id`): czxids compare only within one. */
  clusterId: string;
  /** czxid of the term's candidate znode (`cluster_state.leader_epoch`). */
  czxid: number;
}

/** What `cluster_state` records now. */
export interface RecordedLeaderEpoch {
  czxid: number;
  /** null: recorded before ZooKeeper ids were (the next term of that ZooKeeper fills it in). */
  clusterId: string | null;
  leaderKey: string | null;
  /** Ids of ZooKeeper data that were taken over: they never lead again. */
  retired: string[];
  updatedAt: Date;
}

export async function readLeaderEpoch(db: Db): Promise<RecordedLeaderEpoch> {
  const { rows } = await db.query<{
    leader_epoch: string;
    zk_cluster_id: string | null;
    leader_key: string | null;
    retired_zk_cluster_ids: string[];
    updated_at: Date;
  }>(
    `SELECT leader_epoch::text, zk_cluster_id, leader_key, retired_zk_cluster_ids, updated_at FROM cluster_state WHERE id`,
  );
  const r = rows[0];
  if (!r) throw new Error('cluster_state has no row: the database is not migrated');
  return {
    czxid: Number(r.leader_epoch),
    clusterId: r.zk_cluster_id,
    leaderKey: r.leader_key,
    retired: r.retired_zk_cluster_ids,
    updatedAt: r.updated_at,
  };
}

/**
 * Records a new term of the ZooKeeper the recorded epoch comes from (or of any, when none is
 * recorded yet); true only when `epoch` is newer than the recorded one. Waits for leader-only
 * transactions in flight (they share-lock the row).
 */
export async function advanceLeaderEpoch(db: Db, epoch: LeaderEpoch, leaderKey: string): Promise<boolean> {
  const { rowCount } = await db.query(
    `UPDATE cluster_state SET leader_epoch = $1, zk_cluster_id = $2, leader_key = $3, updated_at = now()
      WHERE id AND leader_epoch < $1 AND (zk_cluster_id = $2 OR zk_cluster_id IS NULL)
        AND NOT ($2 = ANY (retired_zk_cluster_ids))`,
    [epoch.czxid, epoch.clusterId, leaderKey],
  );
  return (rowCount ?? 0) === 1;
}

/**
 * Takes the epoch over for another ZooKeeper (its data was reset or replaced): a compare-and-set
 * on the recorded epoch `expected` (as read before waiting), which retires the recorded id.
 * False when the recorded epoch changed meanwhile, or `epoch.clusterId` is retired.
 */
export async function takeOverLeaderEpoch(
  db: Db,
  epoch: LeaderEpoch,
  leaderKey: string,
  expected: Pick<RecordedLeaderEpoch, 'czxid' | 'clusterId'>,
): Promise<boolean> {
  const { rowCount } = await db.query(
    `UPDATE cluster_state
        SET leader_epoch = $1, zk_cluster_id = $2, leader_key = $3, updated_at = now(),
            retired_zk_cluster_ids = CASE WHEN zk_cluster_id IS NULL THEN retired_zk_cluster_ids
                                          ELSE array_append(retired_zk_cluster_ids, zk_cluster_id) END
      WHERE id AND leader_epoch = $4 AND zk_cluster_id IS NOT DISTINCT FROM $5
        AND zk_cluster_id IS DISTINCT FROM $2 AND NOT ($2 = ANY (retired_zk_cluster_ids))`,
    [epoch.czxid, epoch.clusterId, leaderKey, expected.czxid, expected.clusterId],
  );
  return (rowCount ?? 0) === 1;
}
