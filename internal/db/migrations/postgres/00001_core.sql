-- +goose Up
CREATE TABLE spaces (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    parent_id   TEXT REFERENCES spaces(id),
    inherit     BOOLEAN NOT NULL DEFAULT FALSE,
    labels      TEXT NOT NULL DEFAULT '[]',
    description TEXT NOT NULL DEFAULT '',
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL
);

CREATE TABLE stacks (
    id            TEXT PRIMARY KEY,
    name          TEXT NOT NULL,
    space_id      TEXT NOT NULL REFERENCES spaces(id),
    repository    TEXT NOT NULL,
    branch        TEXT NOT NULL,
    project_root  TEXT NOT NULL DEFAULT '',
    tool          TEXT NOT NULL,
    tool_version  TEXT NOT NULL DEFAULT '',
    labels        TEXT NOT NULL DEFAULT '[]',
    description   TEXT NOT NULL DEFAULT '',
    autodeploy    BOOLEAN NOT NULL DEFAULT FALSE,
    managed_state BOOLEAN NOT NULL DEFAULT TRUE,
    hooks         TEXT NOT NULL DEFAULT '{}',
    worker_pool   TEXT NOT NULL DEFAULT '',
    lock_version  BIGINT NOT NULL DEFAULT 0,
    created_at    BIGINT NOT NULL,
    updated_at    BIGINT NOT NULL
);
CREATE INDEX stacks_space ON stacks(space_id, id);

CREATE TABLE stack_env (
    stack_id TEXT NOT NULL REFERENCES stacks(id) ON DELETE CASCADE,
    name     TEXT NOT NULL,
    value    TEXT NOT NULL,
    secret   BOOLEAN NOT NULL DEFAULT FALSE,
    PRIMARY KEY (stack_id, name)
);

CREATE TABLE runs (
    id             TEXT PRIMARY KEY,
    stack_id       TEXT NOT NULL REFERENCES stacks(id) ON DELETE CASCADE,
    space_id       TEXT NOT NULL, -- the stack's space, kept in step when it moves
    type           TEXT NOT NULL,
    state          TEXT NOT NULL,
    blocking       BOOLEAN NOT NULL,
    drift          BOOLEAN NOT NULL DEFAULT FALSE,
    commit_sha     TEXT NOT NULL DEFAULT '',
    commit_message TEXT NOT NULL DEFAULT '',
    triggered_by   TEXT NOT NULL DEFAULT '',
    command        TEXT NOT NULL DEFAULT '',
    has_delta      BOOLEAN NOT NULL DEFAULT FALSE,
    delta_add      BIGINT NOT NULL DEFAULT 0,
    delta_change   BIGINT NOT NULL DEFAULT 0,
    delta_destroy  BIGINT NOT NULL DEFAULT 0,
    has_changes    BOOLEAN NOT NULL DEFAULT FALSE,
    reason         TEXT NOT NULL DEFAULT '',
    worker_id      TEXT NOT NULL DEFAULT '',
    job_token_hash TEXT NOT NULL DEFAULT '',
    state_token_hash TEXT NOT NULL DEFAULT '',
    stop_requested TEXT NOT NULL DEFAULT '',
    heartbeat_at   BIGINT NOT NULL DEFAULT 0,
    log_size       BIGINT NOT NULL DEFAULT 0,
    created_at     BIGINT NOT NULL,
    updated_at     BIGINT NOT NULL
);
CREATE INDEX runs_stack ON runs(stack_id, id);
CREATE INDEX runs_state ON runs(state, id);
CREATE INDEX runs_space ON runs(space_id, id);
-- The newest blocking run of a stack (its state, and what holds it).
CREATE INDEX runs_blocking ON runs(stack_id, id) WHERE blocking;

CREATE TABLE run_transitions (
    run_id     TEXT NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    seq        BIGINT NOT NULL,
    from_state TEXT NOT NULL,
    to_state   TEXT NOT NULL,
    at         BIGINT NOT NULL,
    actor      TEXT NOT NULL,
    reason     TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (run_id, seq)
);

CREATE TABLE run_logs (
    run_id   TEXT NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    byte_offset BIGINT NOT NULL,
    data     BYTEA NOT NULL,
    PRIMARY KEY (run_id, byte_offset)
);

CREATE TABLE run_artifacts (
    run_id     TEXT NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    name       TEXT NOT NULL,
    data       BYTEA NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (run_id, name)
);

CREATE TABLE state_versions (
    stack_id   TEXT NOT NULL REFERENCES stacks(id) ON DELETE CASCADE,
    serial     BIGINT NOT NULL,
    lineage    TEXT NOT NULL,
    checksum   TEXT NOT NULL,
    size       BIGINT NOT NULL,
    data       BYTEA NOT NULL,
    run_id     TEXT NOT NULL DEFAULT '',
    created_by TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (stack_id, serial)
);

CREATE TABLE state_locks (
    stack_id   TEXT PRIMARY KEY REFERENCES stacks(id) ON DELETE CASCADE,
    lock_id    TEXT NOT NULL,
    info       TEXT NOT NULL,
    holder_run TEXT NOT NULL DEFAULT '',
    created_at BIGINT NOT NULL
);

CREATE TABLE api_tokens (
    id           TEXT PRIMARY KEY,
    name         TEXT NOT NULL,
    token_hash   TEXT NOT NULL UNIQUE,
    created_at   BIGINT NOT NULL,
    last_used_at BIGINT NOT NULL DEFAULT 0
);

CREATE TABLE workers (
    id           TEXT PRIMARY KEY,
    pool_id      TEXT NOT NULL,
    name         TEXT NOT NULL,
    instance     TEXT NOT NULL DEFAULT '',
    token_hash   TEXT NOT NULL,
    registered_at BIGINT NOT NULL,
    last_seen_at BIGINT NOT NULL
);

CREATE TABLE settings (
    name  TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

-- +goose Down
DROP TABLE settings;
DROP TABLE workers;
DROP TABLE api_tokens;
DROP TABLE state_locks;
DROP TABLE state_versions;
DROP TABLE run_artifacts;
DROP TABLE run_logs;
DROP TABLE run_transitions;
DROP TABLE runs;
DROP TABLE stack_env;
DROP TABLE stacks;
DROP TABLE spaces;
