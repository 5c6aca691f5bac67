-- Up Migration
-- The worker registration an attempt was dispatched to: the czxid of the worker's znode
-- `/workers/{key}` as the dispatching master saw it. A worker that loses its session and comes
-- back registers again with the same key but a new znode (a larger czxid). The leader's failover
-- of a key takes over only the attempts of the registrations it knows are gone
-- (worker_czxid <= the newest of them); an attempt dispatched to a newer registration meanwhile
-- is left to it, and taken over when that registration goes too. NULL (rows from before this
-- column, or a master that did not know the czxid) counts as an old registration.
ALTER TABLE task_attempts ADD COLUMN worker_czxid bigint;

-- Down Migration
ALTER TABLE task_attempts DROP COLUMN worker_czxid;
