-- +goose Up
-- Secrets Gantry manages for integrations (an Azure application's client
-- secret it creates and rotates through Microsoft Graph): sealed with the
-- data key; key_id is the provider's id of the secret (to remove it).
CREATE TABLE integration_secrets (
    integration_id TEXT NOT NULL REFERENCES integrations(id) ON DELETE CASCADE,
    key_id         TEXT NOT NULL,
    secret_sealed  TEXT NOT NULL,
    created_at     BIGINT NOT NULL,
    expires_at     BIGINT NOT NULL,
    PRIMARY KEY (integration_id, key_id)
);

-- +goose Down
DROP TABLE integration_secrets;
