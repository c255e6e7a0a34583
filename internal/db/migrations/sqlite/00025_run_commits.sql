-- +goose Up
-- What policies see of a run's commit (Spacelift's commit object): the
-- branch it was asked on (a push's branch, else the stack's tracked branch
-- when the run was created), its author (a push's, else git's), when it was
-- committed (from git, once a worker checked it out; 0 before), and the tag
-- and pull request a push named.
ALTER TABLE runs ADD COLUMN commit_branch TEXT NOT NULL DEFAULT '';
ALTER TABLE runs ADD COLUMN commit_author TEXT NOT NULL DEFAULT '';
ALTER TABLE runs ADD COLUMN commit_at BIGINT NOT NULL DEFAULT 0;
ALTER TABLE runs ADD COLUMN commit_tag TEXT NOT NULL DEFAULT '';
ALTER TABLE runs ADD COLUMN pull_request_id BIGINT NOT NULL DEFAULT 0;
-- Runs made before ran on their stack's tracked branch.
UPDATE runs SET commit_branch = (SELECT s.branch FROM stacks s WHERE s.id = runs.stack_id);
-- A stack's tracked commit: its newest tracked run with a known commit.
CREATE INDEX runs_tracked_commit ON runs(stack_id, id) WHERE type = 'TRACKED' AND commit_sha <> '';

-- +goose Down
DROP INDEX runs_tracked_commit;
ALTER TABLE runs DROP COLUMN pull_request_id;
ALTER TABLE runs DROP COLUMN commit_tag;
ALTER TABLE runs DROP COLUMN commit_at;
ALTER TABLE runs DROP COLUMN commit_author;
ALTER TABLE runs DROP COLUMN commit_branch;
