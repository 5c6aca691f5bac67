import type { Db } from '../db.js';

/** The leader epoch (fencing token of a leadership term, docs/design.md#fencing). */

/** Records a new term; true only when `epoch` is newer than the recorded one. */
export async function advanceLeaderEpoch(db: Db, epoch: number, leaderKey: string): Promise<boolean> {
  const { rowCount } = await db.query(
    `UPDATE cluster_state SET leader_epoch = $1, leader_key = $2, updated_at = now() WHERE id AND leader_epoch < $1`,
    [epoch, leaderKey],
  );
  return (rowCount ?? 0) === 1;
}

export async function getLeaderEpoch(db: Db): Promise<{ epoch: number; leaderKey: string | null }> {
  const { rows } = await db.query<{ leader_epoch: number; leader_key: string | null }>(
    `SELECT leader_epoch, leader_key FROM cluster_state WHERE id`,
  );
  const r = rows[0];
  return { epoch: r?.leader_epoch ?? 0, leaderKey: r?.leader_key ?? null };
}

/**
 * Takes a transaction-level row lock on cluster_state and checks the epoch is still `epoch`.
 * Call first inside a leader-only transaction: a deposed leader's writes then fail, and a new
 * leader's advanceLeaderEpoch waits for the old one's in-flight transaction to end.
 */
export async function assertLeaderEpoch(db: Db, epoch: number): Promise<boolean> {
  const { rows } = await db.query(`SELECT 1 FROM cluster_state WHERE id AND leader_epoch = $1 FOR SHARE`, [
    epoch,
  ]);
  return rows.length === 1;
}
