-- 0001: the first schema of the PostgreSQL store.
--
-- Every time is a bigint of nanoseconds since the Unix epoch (UTC), NULL for
-- none: Go times carry nanoseconds, timestamptz only microseconds, and the
-- store must give back exactly what it was given. Read one in psql with
-- to_timestamp(timer_at / 1e9).

-- tasks holds one row per task. The indexes below are what store/bolt keeps
-- in buckets by hand; PostgreSQL keeps them in step with the rows.
CREATE TABLE tasks (
    id          uuid PRIMARY KEY,
    process     text   NOT NULL CHECK (process <> ''),
    version     text   NOT NULL,
    ref         text   NOT NULL DEFAULT '',  -- '' for none
    input_hash  text   NOT NULL DEFAULT '',
    node        text   NOT NULL,
    status      text   NOT NULL CHECK (status IN ('active', 'waiting', 'escalated', 'succeeded', 'failed', 'canceled')),
    data        bytea,                       -- opaque to the store
    error       jsonb,                       -- store.TaskError, NULL for none
    token       text,                        -- NULL for none
    timer_at    bigint,                      -- NULL for no timer
    timer       text   NOT NULL DEFAULT '',
    attempt     bigint NOT NULL DEFAULT 0,
    steps       bigint NOT NULL DEFAULT 0,
    rev         bigint NOT NULL CHECK (rev > 0),
    history_len bigint NOT NULL CHECK (history_len >= 0),
    marks       jsonb,                       -- []store.Mark, NULL for none
    early       jsonb,                       -- []store.Early, NULL for none
    created     bigint,
    updated     bigint,
    entered     bigint,
    finished    bigint,
    -- The node working on the task and until when; both NULL when free.
    lease_owner text,
    lease_until bigint,
    CONSTRAINT tasks_lease_whole CHECK ((lease_owner IS NULL) = (lease_until IS NULL)),
    -- Deferred, so that one commit can move a token from one task to another.
    CONSTRAINT tasks_token_unique UNIQUE (token) DEFERRABLE INITIALLY DEFERRED
);

-- A ref is unique per process while its task exists.
CREATE UNIQUE INDEX tasks_ref ON tasks (process, ref) WHERE ref <> '';
-- Due, NextDue and ClaimDue.
CREATE INDEX tasks_timer ON tasks (timer_at, id) WHERE timer_at IS NOT NULL;
-- Runnable and ClaimRunnable.
CREATE INDEX tasks_runnable ON tasks (id) WHERE status = 'active';
-- List by node and by status, newest first.
CREATE INDEX tasks_by_node ON tasks (process, node, id DESC);
CREATE INDEX tasks_by_status ON tasks (status, id DESC);
-- Purge, oldest finished first.
CREATE INDEX tasks_finished ON tasks (finished, id) WHERE status IN ('succeeded', 'failed', 'canceled');
-- RescueExpired.
CREATE INDEX tasks_lease ON tasks (lease_until) WHERE lease_until IS NOT NULL;

-- history is each task's append-only log; purging a task deletes it.
CREATE TABLE history (
    task_id   uuid   NOT NULL REFERENCES tasks (id) ON DELETE CASCADE,
    seq       bigint NOT NULL CHECK (seq >= 0),
    at        bigint,
    from_node text   NOT NULL DEFAULT '',
    to_node   text   NOT NULL DEFAULT '',
    event     text   NOT NULL DEFAULT '',
    actor     text   NOT NULL DEFAULT '',
    reason    text   NOT NULL DEFAULT '',
    detail    text   NOT NULL DEFAULT '',
    PRIMARY KEY (task_id, seq)
);

-- counts is how many non-final tasks stand in each node, by status; rows at
-- zero are deleted. Commit keeps it from the old and the new record, in the
-- same transaction, so Counts never scans tasks.
CREATE TABLE counts (
    process text   NOT NULL,
    node    text   NOT NULL,
    status  text   NOT NULL,
    n       bigint NOT NULL CONSTRAINT counts_never_negative CHECK (n >= 0),
    PRIMARY KEY (process, node, status)
);

-- totals is how many tasks ever arrived in a final status at each node; it
-- survives Purge.
CREATE TABLE totals (
    process text   NOT NULL,
    node    text   NOT NULL,
    n       bigint NOT NULL CHECK (n > 0),
    PRIMARY KEY (process, node)
);

-- versions holds the process definitions tasks started on; a row never changes.
CREATE TABLE versions (
    process text   NOT NULL,
    version text   NOT NULL,
    file    text   NOT NULL DEFAULT '',
    source  bytea,
    loaded  bigint,
    PRIMARY KEY (process, version)
);
