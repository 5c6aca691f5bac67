-- Up Migration
-- The leader epoch is a pair: the czxid of the term's candidate znode (`leader_epoch`, as before)
-- and the id of the ZooKeeper data it comes from (`zk_cluster_id`: the `{root}/cluster-id` znode,
-- created once with a random id). czxids only order terms of one ZooKeeper history: a ZooKeeper
-- whose data was reset (a new ensemble, a lost dataDir) starts them again from below the recorded
-- epoch. A leader whose ZooKeeper has another id takes the epoch over after waiting the session
-- timeout plus the failover delay, and retires the old id (`retired_zk_cluster_ids`): a ZooKeeper
-- with a retired id never leads again (docs/decisions/0006-leader-epoch-zookeeper-generation.md).
-- NULL: recorded before this migration; the next term of the same ZooKeeper fills it in.
ALTER TABLE cluster_state
  ADD COLUMN zk_cluster_id text,
  ADD COLUMN retired_zk_cluster_ids text[] NOT NULL DEFAULT '{}';

-- Down Migration
ALTER TABLE cluster_state DROP COLUMN retired_zk_cluster_ids, DROP COLUMN zk_cluster_id;
