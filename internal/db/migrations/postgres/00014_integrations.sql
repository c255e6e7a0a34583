-- +goose Up
-- Cloud integrations: a space's trust in a cloud (AWS, ...), whose
-- credentials runs of the stacks it is attached to receive. config holds
-- non-secret settings (JSON object of strings).
CREATE TABLE integrations (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    space_id    TEXT NOT NULL REFERENCES spaces(id),
    type        TEXT NOT NULL,
    config      TEXT NOT NULL DEFAULT '{}',
    labels      TEXT NOT NULL DEFAULT '[]',
    description TEXT NOT NULL DEFAULT '',
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL
);

-- Explicit attachments: read credentials for planning, write for applying.
CREATE TABLE integration_attachments (
    integration_id TEXT NOT NULL REFERENCES integrations(id) ON DELETE CASCADE,
    stack_id       TEXT NOT NULL REFERENCES stacks(id) ON DELETE CASCADE,
    read           BOOLEAN NOT NULL,
    write          BOOLEAN NOT NULL,
    created_at     BIGINT NOT NULL,
    PRIMARY KEY (integration_id, stack_id)
);
CREATE INDEX integration_attachments_stack ON integration_attachments(stack_id);

-- +goose Down
DROP TABLE integration_attachments;
DROP TABLE integrations;
