-- Up Migration
-- The sched schema, version 1. See packages/store/README.md for what each table and column means.

-- One row per workflow name. `current_version` is the definition version new runs use.
CREATE TABLE workflows (
  id               bigserial PRIMARY KEY,
  name             text NOT NULL UNIQUE CHECK (name ~ '^[a-z0-9][a-z0-9-]*$'),
  current_version  integer NOT NULL CHECK (current_version >= 1),
  created_at       timestamptz NOT NULL DEFAULT now(),
  updated_at       timestamptz NOT NULL DEFAULT now()
);

-- Immutable definition versions. `definition` is the normalised definition (durations in ms);
-- `digest` is the SHA-256 of its canonical JSON, so re-applying an unchanged file is a no-op.
CREATE TABLE workflow_versions (
  workflow_id  bigint NOT NULL REFERENCES workflows (id) ON DELETE CASCADE,
  version      integer NOT NULL CHECK (version >= 1),
  definition   jsonb NOT NULL,
  digest       text NOT NULL,
  created_at   timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (workflow_id, version)
);

-- The tasks of one definition version (a relational copy of definition.tasks for queries and
-- for the run driver: it reads the DAG of the version a run records).
CREATE TABLE workflow_tasks (
  workflow_id  bigint NOT NULL,
  version      integer NOT NULL,
  name         text NOT NULL,
  position     integer NOT NULL,
  type         text NOT NULL CHECK (type IN ('shell', 'script', 'http', 'noop')),
  spec         jsonb NOT NULL,
  PRIMARY KEY (workflow_id, version, name),
  FOREIGN KEY (workflow_id, version) REFERENCES workflow_versions (workflow_id, version) ON DELETE CASCADE
);

-- DAG edges of one definition version: `to_task` depends on `from_task`.
CREATE TABLE workflow_edges (
  workflow_id  bigint NOT NULL,
  version      integer NOT NULL,
  from_task    text NOT NULL,
  to_task      text NOT NULL,
  PRIMARY KEY (workflow_id, version, from_task, to_task),
  FOREIGN KEY (workflow_id, version, from_task) REFERENCES workflow_tasks (workflow_id, version, name) ON DELETE CASCADE,
  FOREIGN KEY (workflow_id, version, to_task) REFERENCES workflow_tasks (workflow_id, version, name) ON DELETE CASCADE
);

-- At most one schedule per workflow; its id is stable across definition versions, so the
-- exactly-once key (schedule_id, fire_time) survives a re-apply. `revision` increases on every
-- change made outside firing (apply, pause, resume): the firer's compare-and-set includes it, so
-- a firer holding a stale copy of the cron cannot advance next_fire_time with the old expression.
CREATE TABLE schedules (
  id                   bigserial PRIMARY KEY,
  workflow_id          bigint NOT NULL UNIQUE REFERENCES workflows (id) ON DELETE CASCADE,
  cron                 text NOT NULL,
  timezone             text NOT NULL DEFAULT 'UTC',
  misfire              text NOT NULL CHECK (misfire IN ('skip', 'fire-once-now', 'fire-all')),
  misfire_threshold_ms integer NOT NULL CHECK (misfire_threshold_ms >= 0),
  max_catch_up         integer NOT NULL CHECK (max_catch_up >= 1),
  concurrency          text NOT NULL CHECK (concurrency IN ('allow', 'forbid', 'replace', 'queue')),
  start_at             timestamptz,
  end_at               timestamptz,
  paused               boolean NOT NULL DEFAULT false,
  next_fire_time       timestamptz,
  revision             bigint NOT NULL DEFAULT 1,
  updated_at           timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX schedules_due ON schedules (next_fire_time) WHERE NOT paused AND next_fire_time IS NOT NULL;

-- Workflow instances. A scheduled run has schedule_id and fire_time; the unique key makes a
-- second fire of the same (schedule, fire time) impossible. Manual, re-run and backfill runs
-- have schedule_id NULL (fire_time is the logical time for backfills and re-runs).
CREATE TABLE runs (
  id                  bigserial PRIMARY KEY,
  workflow_id         bigint NOT NULL,
  workflow_version    integer NOT NULL,
  -- No foreign key on purpose: the fire path inserts up to thousands of runs a second and every
  -- FK check costs; schedule ids are never reused, so a run of a deleted schedule keeps a harmless id.
  schedule_id         bigint,
  fire_time           timestamptz,
  trigger             text NOT NULL CHECK (trigger IN ('schedule', 'misfire', 'manual', 'rerun', 'backfill')),
  state               text NOT NULL DEFAULT 'pending'
                      CHECK (state IN ('pending', 'running', 'succeeded', 'failed', 'cancelled')),
  queued              boolean NOT NULL DEFAULT false,
  owner               text,
  params              jsonb NOT NULL DEFAULT '{}'::jsonb,
  command_id          bigint,
  rerun_of            bigint REFERENCES runs (id) ON DELETE SET NULL,
  cancel_requested_at timestamptz,
  created_at          timestamptz NOT NULL DEFAULT clock_timestamp(),
  started_at          timestamptz,
  ended_at            timestamptz,
  UNIQUE (schedule_id, fire_time),
  -- Also guarantees the workflow exists (workflow_versions references workflows).
  FOREIGN KEY (workflow_id, workflow_version) REFERENCES workflow_versions (workflow_id, version) ON DELETE CASCADE
);
CREATE INDEX runs_active_by_workflow ON runs (workflow_id, id) WHERE state IN ('pending', 'running');
CREATE INDEX runs_by_owner ON runs (owner) WHERE state IN ('pending', 'running');
CREATE INDEX runs_by_workflow ON runs (workflow_id, id);
CREATE INDEX runs_by_command ON runs (command_id) WHERE command_id IS NOT NULL;

-- One row per attempt of one task (per shard) of one run. Written by the run's owner (intent
-- first: state 'pending' or 'dispatched' with the chosen worker incarnation), then by the master
-- that receives the worker's reports with a fenced conditional update on (id, state, worker_key).
CREATE TABLE task_attempts (
  id                 bigserial PRIMARY KEY,
  run_id             bigint NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
  task_name          text NOT NULL,
  attempt            integer NOT NULL CHECK (attempt >= 1),
  shard_index        integer NOT NULL DEFAULT 0 CHECK (shard_index >= 0),
  shard_total        integer NOT NULL DEFAULT 1 CHECK (shard_total >= 1 AND shard_index < shard_total),
  state              text NOT NULL
                     CHECK (state IN ('pending', 'dispatched', 'running', 'succeeded', 'failed',
                                      'timed-out', 'killed', 'failed-over')),
  worker_address     text,
  worker_start_time  bigint,
  worker_key         text,
  not_before         timestamptz,
  created_at         timestamptz NOT NULL DEFAULT clock_timestamp(),
  dispatched_at      timestamptz,
  started_at         timestamptz,
  ended_at           timestamptz,
  exit_code          integer,
  log_tail           text,
  error              text,
  UNIQUE (run_id, task_name, shard_index, attempt)
);
CREATE INDEX task_attempts_active_by_worker ON task_attempts (worker_key)
  WHERE state IN ('dispatched', 'running');
CREATE INDEX task_attempts_waiting ON task_attempts (not_before) WHERE state = 'pending';

-- Durable requests that any master claims with DELETE … RETURNING in the same transaction that
-- creates the run(s): a command is never lost (a crashed claimer rolls back) and never done twice.
CREATE TABLE commands (
  id            bigserial PRIMARY KEY,
  kind          text NOT NULL CHECK (kind IN ('trigger', 'rerun', 'backfill')),
  workflow_id   bigint REFERENCES workflows (id) ON DELETE CASCADE,
  run_id        bigint REFERENCES runs (id) ON DELETE CASCADE,
  params        jsonb NOT NULL DEFAULT '{}'::jsonb,
  range_start   timestamptz,
  range_end     timestamptz,
  requested_by  text,
  created_at    timestamptz NOT NULL DEFAULT now(),
  CHECK (kind <> 'trigger' OR workflow_id IS NOT NULL),
  CHECK (kind <> 'rerun' OR run_id IS NOT NULL),
  CHECK (kind <> 'backfill' OR (workflow_id IS NOT NULL AND range_start IS NOT NULL AND range_end IS NOT NULL))
);

-- Cluster-wide state, one row. leader_epoch is the fencing token of the current leadership term.
CREATE TABLE cluster_state (
  id            boolean PRIMARY KEY DEFAULT true CHECK (id),
  leader_epoch  bigint NOT NULL DEFAULT 0,
  leader_key    text,
  updated_at    timestamptz NOT NULL DEFAULT now()
);
INSERT INTO cluster_state (id) VALUES (true);

-- Down Migration
DROP TABLE cluster_state;
DROP TABLE commands;
DROP TABLE task_attempts;
DROP TABLE runs;
DROP TABLE schedules;
DROP TABLE workflow_edges;
DROP TABLE workflow_tasks;
DROP TABLE workflow_versions;
DROP TABLE workflows;
