-- +goose Up
-- Notification endpoints (webhook and Slack incoming-webhook URLs) defined
-- in a space. Secrets are sealed with the server's key (secrets.Box) under
-- an AAD naming the endpoint; url_display is the URL for webhooks and a
-- masked form for Slack, whose URL is itself a secret.
CREATE TABLE notify_endpoints (
    id             TEXT PRIMARY KEY,
    space_id       TEXT NOT NULL REFERENCES spaces(id) ON DELETE CASCADE,
    kind           TEXT NOT NULL,
    url_display    TEXT NOT NULL,
    url_sealed     TEXT NOT NULL,
    secret_sealed  TEXT NOT NULL DEFAULT '',
    header_names   TEXT NOT NULL DEFAULT '[]',
    headers_sealed TEXT NOT NULL DEFAULT '',
    labels         TEXT NOT NULL DEFAULT '[]',
    retries        BIGINT NOT NULL,
    enabled        BOOLEAN NOT NULL,
    created_at     BIGINT NOT NULL,
    updated_at     BIGINT NOT NULL
);
CREATE INDEX notify_endpoints_space ON notify_endpoints(space_id, id);

-- One message to one endpoint. status: PENDING (due at next_attempt_at),
-- SENDING (claimed; next_attempt_at is when the lease ends), DELIVERED,
-- FAILED. No foreign key to the endpoint: a message naming an unknown
-- endpoint is kept, FAILED, to say so.
CREATE TABLE notify_deliveries (
    id              TEXT PRIMARY KEY,
    kind            TEXT NOT NULL,
    endpoint_id     TEXT NOT NULL,
    space_id        TEXT NOT NULL,
    run_id          TEXT NOT NULL DEFAULT '',
    stack_id        TEXT NOT NULL DEFAULT '',
    event           TEXT NOT NULL DEFAULT '',
    method          TEXT NOT NULL,
    headers         TEXT NOT NULL DEFAULT '{}',
    body            TEXT NOT NULL,
    status          TEXT NOT NULL,
    attempts        BIGINT NOT NULL DEFAULT 0,
    next_attempt_at BIGINT NOT NULL DEFAULT 0,
    lease_token     TEXT NOT NULL DEFAULT '',
    last_error      TEXT NOT NULL DEFAULT '',
    created_at      BIGINT NOT NULL,
    updated_at      BIGINT NOT NULL
);
CREATE INDEX notify_deliveries_due ON notify_deliveries(status, next_attempt_at);
CREATE INDEX notify_deliveries_run ON notify_deliveries(run_id, id);
CREATE INDEX notify_deliveries_endpoint ON notify_deliveries(endpoint_id, id);

CREATE TABLE notify_delivery_attempts (
    delivery_id TEXT NOT NULL REFERENCES notify_deliveries(id) ON DELETE CASCADE,
    n           BIGINT NOT NULL,
    at          BIGINT NOT NULL,
    http_status BIGINT NOT NULL DEFAULT 0,
    error       TEXT NOT NULL DEFAULT '',
    duration_ns BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (delivery_id, n)
);

-- Inbox messages of notification policies (Spacelift's `inbox` rule).
CREATE TABLE notify_inbox (
    id         TEXT PRIMARY KEY,
    space_id   TEXT NOT NULL,
    run_id     TEXT NOT NULL DEFAULT '',
    stack_id   TEXT NOT NULL DEFAULT '',
    event      TEXT NOT NULL DEFAULT '',
    title      TEXT NOT NULL,
    body       TEXT NOT NULL DEFAULT '',
    severity   TEXT NOT NULL,
    read_at    BIGINT NOT NULL DEFAULT 0,
    created_at BIGINT NOT NULL
);
CREATE INDEX notify_inbox_space ON notify_inbox(space_id, id);
CREATE INDEX notify_inbox_run ON notify_inbox(run_id, id);

-- +goose Down
DROP TABLE notify_inbox;
DROP TABLE notify_delivery_attempts;
DROP TABLE notify_deliveries;
DROP TABLE notify_endpoints;
