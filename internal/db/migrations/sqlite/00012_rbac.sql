-- +goose Up
-- Custom roles: a set of actions (JSON array). The built-in roles
-- (space-reader, space-writer, space-admin) are not stored.
CREATE TABLE roles (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    description TEXT NOT NULL DEFAULT '',
    actions     TEXT NOT NULL,
    created_by  TEXT NOT NULL DEFAULT '',
    created_at  BIGINT NOT NULL
);

-- Role bindings: an actor (user, API key or IdP group) holds a role in a
-- space and all its descendants.
CREATE TABLE role_bindings (
    id         TEXT PRIMARY KEY,
    role_id    TEXT NOT NULL,
    space_id   TEXT NOT NULL,
    actor_type TEXT NOT NULL,
    actor_id   TEXT NOT NULL,
    created_by TEXT NOT NULL DEFAULT '',
    created_at BIGINT NOT NULL,
    UNIQUE (role_id, space_id, actor_type, actor_id)
);
CREATE INDEX role_bindings_actor ON role_bindings (actor_type, actor_id);

-- Users who signed in with single sign-on. groups: the IdP groups (after
-- the login policy's team rewrite) of the last login; grants: the login
-- policy's roles per space at that login (JSON object space -> [role]).
CREATE TABLE users (
    id            TEXT PRIMARY KEY,
    issuer        TEXT NOT NULL,
    subject       TEXT NOT NULL,
    login         TEXT NOT NULL,
    name          TEXT NOT NULL DEFAULT '',
    email         TEXT NOT NULL DEFAULT '',
    groups_json   TEXT NOT NULL DEFAULT '[]',
    grants        TEXT NOT NULL DEFAULT '{}',
    admin         BOOLEAN NOT NULL DEFAULT FALSE,
    created_at    BIGINT NOT NULL,
    last_login_at BIGINT NOT NULL DEFAULT 0,
    UNIQUE (issuer, subject)
);

-- Sessions of signed-in users (browser cookie or CLI token); only the
-- token's hash is stored.
CREATE TABLE sessions (
    id         TEXT PRIMARY KEY,
    token_hash TEXT NOT NULL UNIQUE,
    user_id    TEXT NOT NULL,
    kind       TEXT NOT NULL,
    source_ip  TEXT NOT NULL DEFAULT '',
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    revoked_at BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX sessions_user ON sessions (user_id);

-- Logins in progress (between the redirect to the IdP and its callback),
-- in the database so that any replica can finish them.
CREATE TABLE oidc_logins (
    state      TEXT PRIMARY KEY,
    verifier   TEXT NOT NULL,
    nonce      TEXT NOT NULL,
    return_to  TEXT NOT NULL DEFAULT '',
    cli_port   INTEGER NOT NULL DEFAULT 0,
    cli_code   TEXT NOT NULL DEFAULT '',
    created_at BIGINT NOT NULL
);

-- API keys: admin keys may do everything (the keys made before roles
-- existed, and the server's bootstrap key, are admins); owner_user: a key a
-- signed-in user made for themselves acts as that user.
ALTER TABLE api_tokens ADD COLUMN admin BOOLEAN NOT NULL DEFAULT FALSE;
ALTER TABLE api_tokens ADD COLUMN owner_user TEXT NOT NULL DEFAULT '';
UPDATE api_tokens SET admin = TRUE;

-- +goose Down
ALTER TABLE api_tokens DROP COLUMN owner_user;
ALTER TABLE api_tokens DROP COLUMN admin;
DROP TABLE oidc_logins;
DROP TABLE sessions;
DROP TABLE users;
DROP TABLE role_bindings;
DROP TABLE roles;
