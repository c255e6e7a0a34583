-- +goose Up
-- Which policies own each flag of a run (Spacelift's policy flag reset: a
-- flag goes only when every policy that set it resets it). The flags runs
-- carry now are owned by the policies whose receipts on the run set them;
-- a flag no receipt claims (carried over by a trigger, set before receipts
-- kept flags) has no owner, and no policy can reset it.
CREATE TABLE run_flag_owners (
    run_id    TEXT NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    flag      TEXT NOT NULL,
    policy_id TEXT NOT NULL,
    PRIMARY KEY (run_id, flag, policy_id)
);
INSERT INTO run_flag_owners (run_id, flag, policy_id)
SELECT DISTINCT rc.run_id, f.value, rc.policy_id
FROM policy_receipts rc JOIN runs ON runs.id = rc.run_id
CROSS JOIN LATERAL jsonb_array_elements_text(rc.flags::jsonb) AS f(value)
WHERE rc.flags <> '[]' AND EXISTS (SELECT 1 FROM jsonb_array_elements_text(runs.flags::jsonb) AS rf(value) WHERE rf.value = f.value);

-- The reviewer's roles in the run's space when it reviewed (a JSON array
-- of {"slug", "name"}, Spacelift's author_roles); reviews made before have
-- none.
ALTER TABLE run_reviews ADD COLUMN roles TEXT NOT NULL DEFAULT '[]';

-- The version of the tool that made the run's plan (its plan JSON's
-- terraform_version); the stack's terraform_version in policy inputs is
-- that of its newest run that applied.
ALTER TABLE runs ADD COLUMN tool_version TEXT NOT NULL DEFAULT '';
CREATE INDEX runs_applied ON runs(stack_id, id) WHERE state = 'FINISHED' AND has_changes AND tool_version <> '';

-- +goose Down
DROP INDEX runs_applied;
ALTER TABLE runs DROP COLUMN tool_version;
ALTER TABLE run_reviews DROP COLUMN roles;
DROP TABLE run_flag_owners;
