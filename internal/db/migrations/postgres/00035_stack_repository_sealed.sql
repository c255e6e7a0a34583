-- +goose Up
-- A repository URL carrying a credential (https://user:password@host/...)
-- is kept sealed with the data key here; repository then holds the URL as
-- shown, its credential replaced by *****. Existing URLs are sealed when
-- the server starts (stack.Service.SealRepositories).
ALTER TABLE stacks ADD COLUMN repository_sealed TEXT NOT NULL DEFAULT '';

-- +goose Down
ALTER TABLE stacks DROP COLUMN repository_sealed;
