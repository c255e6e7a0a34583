-- +goose Up
-- What a run's first job ran with, as policies see it (Spacelift's
-- runtime_config): a JSON object of the project root, the tool version,
-- the hooks and the plain environment; '' until a worker claimed the run.
ALTER TABLE runs ADD COLUMN runtime_config TEXT NOT NULL DEFAULT '';

-- +goose Down
ALTER TABLE runs DROP COLUMN runtime_config;
