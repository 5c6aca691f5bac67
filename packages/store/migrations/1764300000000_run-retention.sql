-- Up Migration
-- Retention of ended runs (`db.retention`, `sched-ctl db prune`; docs/operations.md#retention).
-- The leader deletes ended runs older than the retention in batches, oldest first, with their task
-- attempts (task_attempts.run_id is ON DELETE CASCADE).
--
-- runs_ended: finds the oldest ended runs with an index range scan, however large the table, and
-- finds nothing cheaply once the backlog is drained (the predicate is the retention statement's).
CREATE INDEX runs_ended ON runs (ended_at) WHERE state IN ('succeeded', 'failed', 'cancelled');
-- runs_by_rerun_of: runs.rerun_of is ON DELETE SET NULL (a re-run outlives the run it re-ran, and
-- then says it re-ran a run that is gone); PostgreSQL looks up the referencing runs of every
-- deleted run, which without this index is a scan of the whole table per deleted run.
CREATE INDEX runs_by_rerun_of ON runs (rerun_of) WHERE rerun_of IS NOT NULL;

-- Down Migration
DROP INDEX runs_by_rerun_of;
DROP INDEX runs_ended;
