-- Up Migration
-- One row per failed-over incarnation (docs/design.md#failover), written in the same transaction that
-- takes its workload over, fenced by the leader epoch. `recorded_at` is set once the
-- FAILOVER_FINISH_NODES record is in ZooKeeper: a leader that dies between the two leaves a row
-- with recorded_at NULL, and the next leader's reconciliation sweep writes the record. The key
-- is the primary key, so an incarnation is failed over at most once.
CREATE TABLE failovers (
  key             text PRIMARY KEY,
  role            text NOT NULL CHECK (role IN ('master', 'worker')),
  address         text NOT NULL,
  start_time      bigint NOT NULL,
  pid             integer,
  session_id      text,
  leader_epoch    bigint NOT NULL,
  leader_key      text NOT NULL,
  tasks           integer NOT NULL DEFAULT 0,
  runs            integer NOT NULL DEFAULT 0,
  failed_over_at  timestamptz NOT NULL DEFAULT clock_timestamp(),
  recorded_at     timestamptz
);
CREATE INDEX failovers_unrecorded ON failovers (failed_over_at) WHERE recorded_at IS NULL;

-- Down Migration
DROP TABLE failovers;
