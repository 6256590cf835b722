-- 0002: the audit log, bulk jobs and queue alarm crossings.

-- A history entry names the bulk job that wrote it; '' for none.
ALTER TABLE history ADD COLUMN job_id text NOT NULL DEFAULT '';

-- audit is a copy of every operator action of the history (event
-- 'operator_...'), written by the commit that appends the history entry. It
-- has no foreign key to tasks: the audit log outlives purged tasks. at is
-- the entry's time, or the smallest bigint for the zero time, so that it
-- can be ordered on.
CREATE TABLE audit (
    task_id   uuid   NOT NULL,
    seq       bigint NOT NULL CHECK (seq >= 0),
    at        bigint NOT NULL,
    process   text   NOT NULL,
    actor     text   NOT NULL DEFAULT '',
    action    text   NOT NULL,
    from_node text   NOT NULL DEFAULT '',
    to_node   text   NOT NULL DEFAULT '',
    reason    text   NOT NULL DEFAULT '',
    detail    text   NOT NULL DEFAULT '',
    job_id    text   NOT NULL DEFAULT '',
    PRIMARY KEY (task_id, seq)
);
-- Audit, newest first, alone or by actor or process.
CREATE INDEX audit_at ON audit (at, task_id, seq);
CREATE INDEX audit_by_actor ON audit (actor, at, task_id, seq);
CREATE INDEX audit_by_process ON audit (process, at, task_id, seq);

-- The operator actions recorded before the audit log existed.
INSERT INTO audit (task_id, seq, at, process, actor, action, from_node, to_node, reason, detail)
SELECT h.task_id, h.seq, coalesce(h.at, -9223372036854775808), t.process, h.actor, h.event,
       h.from_node, h.to_node, h.reason, h.detail
FROM history h JOIN tasks t ON t.id = h.task_id
WHERE h.event LIKE 'operator\_%';

-- jobs holds the bulk jobs: the whole store.Job as JSON, with the columns
-- PutJob checks and Jobs orders by.
CREATE TABLE jobs (
    id     uuid   PRIMARY KEY,
    rev    bigint NOT NULL CHECK (rev > 0),
    status text   NOT NULL CHECK (status IN ('pending', 'running', 'done', 'canceled', 'failed')),
    job    jsonb  NOT NULL
);

-- job_results is one result per task of a job; a later one replaces it.
CREATE TABLE job_results (
    job_id  uuid    NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    task_id uuid    NOT NULL,
    ok      boolean NOT NULL,
    error   text    NOT NULL DEFAULT '',
    at      bigint,
    PRIMARY KEY (job_id, task_id)
);

-- alarm_crossings logs the queue alarms going on and off; a node's latest
-- crossing is its alarm's state.
CREATE TABLE alarm_crossings (
    process   text    NOT NULL,
    node      text    NOT NULL,
    seq       bigint  NOT NULL CHECK (seq > 0),
    raised    boolean NOT NULL,
    count     bigint  NOT NULL,
    threshold bigint  NOT NULL,
    signal    text    NOT NULL DEFAULT '',
    task_id   uuid,
    at        bigint,
    PRIMARY KEY (process, node, seq)
);
CREATE INDEX alarm_crossings_at ON alarm_crossings (at, process, node, seq);
