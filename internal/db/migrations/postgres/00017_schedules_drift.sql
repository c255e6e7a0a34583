-- +goose Up
-- Schedules (package schedule): drift detection (one per stack), scheduled
-- tracked runs and tasks (cron), and a scheduled delete (at a time).
-- next_due is the schedule's own due time; next_run_at adds the jitter
-- that spreads schedules sharing one expression. Both in Unix nanoseconds;
-- 0 means never (a one-shot schedule that already fired).
CREATE TABLE schedules (
    id            TEXT PRIMARY KEY,
    stack_id      TEXT NOT NULL REFERENCES stacks(id) ON DELETE CASCADE,
    kind          TEXT NOT NULL,
    crons         TEXT NOT NULL DEFAULT '[]',
    timezone      TEXT NOT NULL DEFAULT 'UTC',
    at            BIGINT NOT NULL DEFAULT 0,
    command       TEXT NOT NULL DEFAULT '',
    reconcile     BOOLEAN NOT NULL DEFAULT FALSE,
    ignore_state  BOOLEAN NOT NULL DEFAULT FALSE,
    delete_resources BOOLEAN NOT NULL DEFAULT TRUE,
    next_due      BIGINT NOT NULL DEFAULT 0,
    next_run_at   BIGINT NOT NULL DEFAULT 0,
    last_due      BIGINT NOT NULL DEFAULT 0,
    last_run_id   TEXT NOT NULL DEFAULT '',
    last_note     TEXT NOT NULL DEFAULT '',
    status        TEXT NOT NULL DEFAULT 'active', -- active | waiting (delete: its destroy run) | done
    created_by    TEXT NOT NULL DEFAULT '',
    created_at    BIGINT NOT NULL,
    updated_at    BIGINT NOT NULL
);
CREATE UNIQUE INDEX schedules_drift ON schedules(stack_id) WHERE kind = 'drift';
CREATE INDEX schedules_stack ON schedules(stack_id, id);
CREATE INDEX schedules_due ON schedules(next_run_at) WHERE next_run_at > 0;

-- Drift found by drift detection runs: one row per resource and episode
-- (from the run that first saw it to the run that no longer did).
CREATE TABLE drift_resources (
    id               TEXT PRIMARY KEY,
    stack_id         TEXT NOT NULL REFERENCES stacks(id) ON DELETE CASCADE,
    address          TEXT NOT NULL,
    type             TEXT NOT NULL DEFAULT '',
    provider         TEXT NOT NULL DEFAULT '',
    cloud            TEXT NOT NULL DEFAULT '',
    action           TEXT NOT NULL DEFAULT '',
    attributes       TEXT NOT NULL DEFAULT '[]',
    first_run_id     TEXT NOT NULL,
    first_detected_at BIGINT NOT NULL,
    last_run_id      TEXT NOT NULL,
    last_detected_at BIGINT NOT NULL,
    resolved_run_id  TEXT NOT NULL DEFAULT '',
    resolved_at      BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX drift_resources_stack ON drift_resources(stack_id, resolved_at, address);

-- The last drift check of each stack.
CREATE TABLE drift_checks (
    stack_id        TEXT PRIMARY KEY REFERENCES stacks(id) ON DELETE CASCADE,
    last_run_id     TEXT NOT NULL,
    last_checked_at BIGINT NOT NULL,
    outcome         TEXT NOT NULL,
    drifted         BIGINT NOT NULL DEFAULT 0,
    pending_changes BOOLEAN NOT NULL DEFAULT FALSE,
    clouds          TEXT NOT NULL DEFAULT '[]'
);

-- Runs may target resources (drift reconciliation of chosen resources).
ALTER TABLE runs ADD COLUMN targets TEXT NOT NULL DEFAULT '[]';
-- At most this many drift detection runs of a pool at once (0: no limit).
ALTER TABLE worker_pools ADD COLUMN drift_run_limit BIGINT NOT NULL DEFAULT 0;

-- +goose Down
ALTER TABLE worker_pools DROP COLUMN drift_run_limit;
ALTER TABLE runs DROP COLUMN targets;
DROP TABLE drift_checks;
DROP TABLE drift_resources;
DROP TABLE schedules;
