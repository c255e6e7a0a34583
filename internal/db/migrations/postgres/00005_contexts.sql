-- +goose Up
-- Contexts: shared configuration (environment variables, mounted files and
-- hooks) of a space, attached to stacks with a priority or by an
-- autoattach:<label> label. Secret values and secret file contents are
-- sealed with the server's key (AAD: context id and name or path).
CREATE TABLE contexts (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    space_id    TEXT NOT NULL REFERENCES spaces(id),
    labels      TEXT NOT NULL DEFAULT '[]',
    description TEXT NOT NULL DEFAULT '',
    hooks       TEXT NOT NULL DEFAULT '{}',
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL
);
CREATE INDEX contexts_space ON contexts(space_id, id);

CREATE TABLE context_env (
    context_id  TEXT NOT NULL REFERENCES contexts(id) ON DELETE CASCADE,
    name        TEXT NOT NULL,
    value       TEXT NOT NULL,
    secret      BOOLEAN NOT NULL DEFAULT FALSE,
    description TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (context_id, name)
);

CREATE TABLE context_files (
    context_id  TEXT NOT NULL REFERENCES contexts(id) ON DELETE CASCADE,
    path        TEXT NOT NULL,
    content     BYTEA NOT NULL,
    size        BIGINT NOT NULL,
    secret      BOOLEAN NOT NULL DEFAULT FALSE,
    description TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (context_id, path)
);

CREATE TABLE context_attachments (
    context_id TEXT NOT NULL REFERENCES contexts(id) ON DELETE CASCADE,
    stack_id   TEXT NOT NULL REFERENCES stacks(id) ON DELETE CASCADE,
    priority   BIGINT NOT NULL DEFAULT 0,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (context_id, stack_id)
);
CREATE INDEX context_attachments_stack ON context_attachments(stack_id);

-- +goose Down
DROP TABLE context_attachments;
DROP TABLE context_files;
DROP TABLE context_env;
DROP TABLE contexts;
