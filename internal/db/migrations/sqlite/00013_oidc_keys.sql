-- +goose Up
-- Keys signing the runs' OpenID Connect tokens. private_sealed: the PKCS #8
-- private key sealed with the data key (AAD "oidc-key:<kid>"). The newest
-- key not retired signs; retired keys stay published until not_after, so
-- tokens they signed keep verifying until they expire.
CREATE TABLE oidc_keys (
    kid            TEXT PRIMARY KEY,
    alg            TEXT NOT NULL,
    private_sealed TEXT NOT NULL,
    public_jwk     TEXT NOT NULL,
    created_at     BIGINT NOT NULL,
    retired_at     BIGINT NOT NULL DEFAULT 0,
    not_after      BIGINT NOT NULL DEFAULT 0
);

-- +goose Down
DROP TABLE oidc_keys;
