-- +goose Up
-- API keys users create, list and revoke. Times are Unix nanoseconds; 0
-- means never. A revoked key keeps its row (the history of who had access)
-- but stops authenticating at once. created_by names the principal that
-- made the key ("api_key::<name>"); empty for keys the server made at start.
ALTER TABLE api_tokens ADD COLUMN expires_at BIGINT NOT NULL DEFAULT 0;
ALTER TABLE api_tokens ADD COLUMN created_by TEXT NOT NULL DEFAULT '';
ALTER TABLE api_tokens ADD COLUMN revoked_at BIGINT NOT NULL DEFAULT 0;

-- +goose Down
ALTER TABLE api_tokens DROP COLUMN revoked_at;
ALTER TABLE api_tokens DROP COLUMN created_by;
ALTER TABLE api_tokens DROP COLUMN expires_at;
