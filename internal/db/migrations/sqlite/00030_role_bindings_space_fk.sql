-- +goose Up
-- A binding in a space deleted while it was being made (two replicas on
-- PostgreSQL raced before spaces were locked) would apply to any later
-- space of the same id. Such bindings go, and a foreign key keeps a
-- binding's space from going from under it (deleting a space that holds
-- bindings is refused, as before). SQLite adds a foreign key by building
-- the table again; nothing refers to role_bindings.
CREATE TABLE role_bindings_new (
    id         TEXT PRIMARY KEY,
    role_id    TEXT NOT NULL,
    space_id   TEXT NOT NULL REFERENCES spaces(id),
    actor_type TEXT NOT NULL,
    actor_id   TEXT NOT NULL,
    created_by TEXT NOT NULL DEFAULT '',
    created_at BIGINT NOT NULL,
    UNIQUE (role_id, space_id, actor_type, actor_id)
);
INSERT INTO role_bindings_new (id, role_id, space_id, actor_type, actor_id, created_by, created_at)
    SELECT id, role_id, space_id, actor_type, actor_id, created_by, created_at FROM role_bindings
    WHERE space_id IN (SELECT id FROM spaces);
DROP TABLE role_bindings;
ALTER TABLE role_bindings_new RENAME TO role_bindings;
CREATE INDEX role_bindings_actor ON role_bindings (actor_type, actor_id);

-- +goose Down
CREATE TABLE role_bindings_old (
    id         TEXT PRIMARY KEY,
    role_id    TEXT NOT NULL,
    space_id   TEXT NOT NULL,
    actor_type TEXT NOT NULL,
    actor_id   TEXT NOT NULL,
    created_by TEXT NOT NULL DEFAULT '',
    created_at BIGINT NOT NULL,
    UNIQUE (role_id, space_id, actor_type, actor_id)
);
INSERT INTO role_bindings_old SELECT id, role_id, space_id, actor_type, actor_id, created_by, created_at FROM role_bindings;
DROP TABLE role_bindings;
ALTER TABLE role_bindings_old RENAME TO role_bindings;
CREATE INDEX role_bindings_actor ON role_bindings (actor_type, actor_id);
