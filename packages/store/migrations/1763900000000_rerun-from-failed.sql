-- Up Migration
-- A re-run either runs every task again (the default) or only the tasks that did not succeed:
-- with from_failed, the new run starts with the original run's succeeded attempts carried over.
ALTER TABLE commands ADD COLUMN from_failed boolean NOT NULL DEFAULT false;

-- Down Migration
ALTER TABLE commands DROP COLUMN from_failed;
