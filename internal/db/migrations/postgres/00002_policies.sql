-- +goose Up
-- Policies (Rego), their versions, attachments to stacks, the receipts of
-- every evaluation on a run, samples kept for simulate/replay, reviews of
-- runs, and the events that drive trigger and notification policies.
CREATE TABLE policies (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    space_id    TEXT NOT NULL REFERENCES spaces(id),
    type        TEXT NOT NULL,
    body        TEXT NOT NULL,
    engine      TEXT NOT NULL,           -- the syntax used (rego_v0 or rego_v1)
    engine_set  TEXT NOT NULL DEFAULT '', -- what the user asked for ('' = detect)
    labels      TEXT NOT NULL DEFAULT '[]',
    description TEXT NOT NULL DEFAULT '',
    version     BIGINT NOT NULL DEFAULT 1,
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL
);
CREATE INDEX policies_space ON policies(space_id, id);
CREATE INDEX policies_type ON policies(type, id);

CREATE TABLE policy_versions (
    policy_id  TEXT NOT NULL REFERENCES policies(id) ON DELETE CASCADE,
    version    BIGINT NOT NULL,
    body       TEXT NOT NULL,
    engine     TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (policy_id, version)
);

CREATE TABLE policy_attachments (
    policy_id  TEXT NOT NULL REFERENCES policies(id) ON DELETE CASCADE,
    stack_id   TEXT NOT NULL REFERENCES stacks(id) ON DELETE CASCADE,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (policy_id, stack_id)
);
CREATE INDEX policy_attachments_stack ON policy_attachments(stack_id);

CREATE TABLE policy_receipts (
    id             TEXT PRIMARY KEY,
    run_id         TEXT NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    policy_id      TEXT NOT NULL,
    policy_name    TEXT NOT NULL,
    policy_version BIGINT NOT NULL,
    type           TEXT NOT NULL,
    outcome        TEXT NOT NULL,
    messages       TEXT NOT NULL DEFAULT '[]',
    flags          TEXT NOT NULL DEFAULT '[]',
    error          TEXT NOT NULL DEFAULT '',
    duration_us    BIGINT NOT NULL DEFAULT 0,
    sample_key     TEXT NOT NULL DEFAULT '',
    at             BIGINT NOT NULL
);
CREATE INDEX policy_receipts_run ON policy_receipts(run_id, id);

-- One input (string values sanitized) shared by the samples of the
-- policies evaluated on it.
CREATE TABLE policy_inputs (
    key        TEXT PRIMARY KEY,
    type       TEXT NOT NULL,
    input      TEXT NOT NULL,
    created_at BIGINT NOT NULL
);

CREATE TABLE policy_samples (
    key            TEXT PRIMARY KEY,
    policy_id      TEXT NOT NULL REFERENCES policies(id) ON DELETE CASCADE,
    policy_version BIGINT NOT NULL,
    type           TEXT NOT NULL,
    run_id         TEXT NOT NULL DEFAULT '',
    explicit       BOOLEAN NOT NULL DEFAULT FALSE, -- the policy asked for it (sample)
    outcome        TEXT NOT NULL,
    input_key      TEXT NOT NULL REFERENCES policy_inputs(key),
    result         TEXT NOT NULL,
    created_at     BIGINT NOT NULL
);
CREATE INDEX policy_samples_policy ON policy_samples(policy_id, key);
CREATE INDEX policy_samples_input ON policy_samples(input_key);

CREATE TABLE run_reviews (
    id         TEXT PRIMARY KEY,
    run_id     TEXT NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    author     TEXT NOT NULL,
    decision   TEXT NOT NULL, -- APPROVE or REJECT
    note       TEXT NOT NULL DEFAULT '',
    run_state  TEXT NOT NULL,
    remote_ip  TEXT NOT NULL DEFAULT '',
    created_at BIGINT NOT NULL
);
CREATE INDEX run_reviews_run ON run_reviews(run_id, id);

CREATE TABLE policy_events (
    id          TEXT PRIMARY KEY,
    kind        TEXT NOT NULL, -- run_updated or run_ended
    run_id      TEXT NOT NULL,
    payload     TEXT NOT NULL DEFAULT '{}',
    status      TEXT NOT NULL DEFAULT 'PENDING', -- PENDING, DONE, FAILED
    attempts    BIGINT NOT NULL DEFAULT 0,
    next_at     BIGINT NOT NULL,
    lease_until BIGINT NOT NULL DEFAULT 0,
    error       TEXT NOT NULL DEFAULT '',
    created_at  BIGINT NOT NULL
);
CREATE INDEX policy_events_due ON policy_events(status, next_at);

ALTER TABLE runs ADD COLUMN flags TEXT NOT NULL DEFAULT '[]';
ALTER TABLE runs ADD COLUMN workflow_id TEXT NOT NULL DEFAULT '';
ALTER TABLE runs ADD COLUMN review_from TEXT NOT NULL DEFAULT '';
ALTER TABLE stacks ADD COLUMN raw_policy_input BOOLEAN NOT NULL DEFAULT FALSE;

-- +goose Down
ALTER TABLE stacks DROP COLUMN raw_policy_input;
ALTER TABLE runs DROP COLUMN review_from;
ALTER TABLE runs DROP COLUMN workflow_id;
ALTER TABLE runs DROP COLUMN flags;
DROP TABLE policy_events;
DROP TABLE run_reviews;
DROP TABLE policy_samples;
DROP TABLE policy_inputs;
DROP TABLE policy_receipts;
DROP TABLE policy_attachments;
DROP TABLE policy_versions;
DROP TABLE policies;
