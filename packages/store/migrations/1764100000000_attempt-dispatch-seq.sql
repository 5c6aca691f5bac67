-- Up Migration
-- How many times the attempt has been assigned to a worker: 1 on its first dispatch, +1 on every
-- reassignment. A dispatch carries it, and so does a master's revoke after a dispatch whose answer
-- was lost: the worker then refuses every copy of that attempt up to that number, while a later
-- assignment (a higher number) to the same worker still runs. So an attempt whose first delivery
-- is uncertain is never given to a second worker while the first may still start it.
ALTER TABLE task_attempts ADD COLUMN dispatch_seq integer NOT NULL DEFAULT 0;

-- Down Migration
ALTER TABLE task_attempts DROP COLUMN dispatch_seq;
