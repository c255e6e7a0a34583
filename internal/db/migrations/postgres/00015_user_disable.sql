-- +goose Up
-- A disabled user cannot sign in; their sessions and own API keys were
-- revoked when they were disabled.
ALTER TABLE users ADD COLUMN disabled_at BIGINT NOT NULL DEFAULT 0;

-- +goose Down
ALTER TABLE users DROP COLUMN disabled_at;
