-- +goose Up
-- Who created a run and who reviewed it, as policies see them (Spacelift's
-- session objects): whether the principal was an admin and its IdP groups
-- (a JSON array) when it acted. Rows made before stay non-admin, no teams.
ALTER TABLE runs ADD COLUMN creator_admin BOOLEAN NOT NULL DEFAULT FALSE;
ALTER TABLE runs ADD COLUMN creator_teams TEXT NOT NULL DEFAULT '[]';
ALTER TABLE run_reviews ADD COLUMN admin BOOLEAN NOT NULL DEFAULT FALSE;
ALTER TABLE run_reviews ADD COLUMN teams TEXT NOT NULL DEFAULT '[]';

-- +goose Down
ALTER TABLE run_reviews DROP COLUMN teams;
ALTER TABLE run_reviews DROP COLUMN admin;
ALTER TABLE runs DROP COLUMN creator_teams;
ALTER TABLE runs DROP COLUMN creator_admin;
