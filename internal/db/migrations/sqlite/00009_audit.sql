-- +goose Up
-- The audit trail: one row per event, hash-chained (package audit). seq is
-- gap-free and handed out by the single audit_head row, which every writer
-- updates in its own transaction: on PostgreSQL that row lock serializes
-- writers across replicas, so the chain stays linear. Times are Unix
-- nanoseconds; roles is a JSON array; change is JSON text (or empty),
-- hashed exactly as stored.
CREATE TABLE audit_events (
    seq          BIGINT PRIMARY KEY,
    at           BIGINT NOT NULL,
    actor        TEXT NOT NULL,
    roles        TEXT NOT NULL DEFAULT '[]',
    source_ip    TEXT NOT NULL DEFAULT '',
    request_id   TEXT NOT NULL DEFAULT '',
    action       TEXT NOT NULL,
    subject_type TEXT NOT NULL DEFAULT '',
    subject_id   TEXT NOT NULL DEFAULT '',
    space        TEXT NOT NULL DEFAULT '',
    change       TEXT NOT NULL DEFAULT '',
    outcome      TEXT NOT NULL,
    prev_hash    TEXT NOT NULL,
    hash         TEXT NOT NULL
);
CREATE INDEX audit_events_at ON audit_events(at, seq);
CREATE INDEX audit_events_actor ON audit_events(actor, seq);
CREATE INDEX audit_events_action ON audit_events(action, seq);
CREATE INDEX audit_events_subject ON audit_events(subject_type, subject_id, seq);
CREATE INDEX audit_events_space ON audit_events(space, seq);

-- The head of the chain: the last seq handed out and its hash.
CREATE TABLE audit_head (
    id   INTEGER PRIMARY KEY,
    seq  BIGINT NOT NULL,
    hash TEXT NOT NULL
);
INSERT INTO audit_head (id, seq, hash) VALUES (1, 0, '0000000000000000000000000000000000000000000000000000000000000000');

-- +goose Down
DROP TABLE audit_head;
DROP INDEX audit_events_space;
DROP INDEX audit_events_subject;
DROP INDEX audit_events_action;
DROP INDEX audit_events_actor;
DROP INDEX audit_events_at;
DROP TABLE audit_events;
