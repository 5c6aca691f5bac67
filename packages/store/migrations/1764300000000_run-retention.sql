-- Up Migration
-- Retention of ended runs (`db.retention`, `sched-ctl db prune`; docs/operations.md#retention).
-- The leader deletes ended runs older than the retention in batches, oldest first, with their task
-- attempts (task_attempts.run_id is ON DELETE CASCADE).
--
-- Migrations run in one transaction, so these are plain CREATE INDEX: runs takes no writes (no
-- fire) while they are built. On a very large runs table, build them first with CREATE INDEX
-- CONCURRENTLY and the same names and definitions; IF NOT EXISTS then skips them here.
--
-- runs_ended: finds the oldest ended runs with an index range scan, however large the table, and
-- finds nothing cheaply once the backlog is drained (the predicate is the retention statement's).
CREATE INDEX IF NOT EXISTS runs_ended ON runs (ended_at) WHERE state IN ('succeeded', 'failed', 'cancelled');
-- runs_by_rerun_of: runs.rerun_of is ON DELETE SET NULL (a re-run outlives the run it re-ran, and
-- then says it re-ran a run that is gone); PostgreSQL looks up the referencing runs of every
-- deleted run, which without this index is a scan of the whole table per deleted run.
CREATE INDEX IF NOT EXISTS runs_by_rerun_of ON runs (rerun_of) WHERE rerun_of IS NOT NULL;

-- Down Migration
DROP INDEX IF EXISTS runs_by_rerun_of;
DROP INDEX IF EXISTS runs_ended;
