-- +goose Up
-- More of who created a run and who reviewed it, as policies see them
-- (Spacelift's session objects): the display name single sign-on gave a
-- user ('' for API keys and runs Gantry starts itself) and, for a run,
-- the client address of the request that created it. Rows made before
-- stay ''.
ALTER TABLE runs ADD COLUMN creator_name TEXT NOT NULL DEFAULT '';
ALTER TABLE runs ADD COLUMN creator_ip TEXT NOT NULL DEFAULT '';
ALTER TABLE run_reviews ADD COLUMN author_name TEXT NOT NULL DEFAULT '';

-- +goose Down
ALTER TABLE run_reviews DROP COLUMN author_name;
ALTER TABLE runs DROP COLUMN creator_ip;
ALTER TABLE runs DROP COLUMN creator_name;
