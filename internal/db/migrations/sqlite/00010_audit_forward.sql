-- +goose Up
-- Audit forwarding (package audit): endpoints that receive every audit
-- event, in seq order, at least once. delivered_seq is the endpoint's
-- cursor: the last seq it acknowledged with a 2xx. secret_sealed and
-- headers_sealed are sealed with the server's secrets box (header_names
-- lists the names, for display). failing_since is when the current run of
-- failures started (0: none); flagged is set once it lasts too long.
-- lease_token/lease_until hold the endpoint for one forwarder at a time
-- (times are Unix nanoseconds).
CREATE TABLE audit_forward_endpoints (
    id                TEXT PRIMARY KEY,
    url               TEXT NOT NULL,
    secret_sealed     TEXT NOT NULL DEFAULT '',
    header_names      TEXT NOT NULL DEFAULT '[]',
    headers_sealed    TEXT NOT NULL DEFAULT '',
    enabled           BOOLEAN NOT NULL,
    created_at        BIGINT NOT NULL,
    delivered_seq     BIGINT NOT NULL,
    last_delivered_at BIGINT NOT NULL DEFAULT 0,
    attempts          INTEGER NOT NULL DEFAULT 0,
    last_error        TEXT NOT NULL DEFAULT '',
    failing_since     BIGINT NOT NULL DEFAULT 0,
    flagged           BOOLEAN NOT NULL DEFAULT FALSE,
    next_attempt_at   BIGINT NOT NULL DEFAULT 0,
    lease_token       TEXT NOT NULL DEFAULT '',
    lease_until       BIGINT NOT NULL DEFAULT 0
);

-- +goose Down
DROP TABLE audit_forward_endpoints;
