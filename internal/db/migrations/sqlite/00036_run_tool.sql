-- +goose Up
-- The tool (opentofu or terraform) a run's plan was made with, recorded
-- when its plan job is claimed: the apply job after a confirmation runs
-- the plan with that tool and the version in tool_version, whatever the
-- stack says by then. Runs planned before have none (their apply takes
-- the stack's).
ALTER TABLE runs ADD COLUMN tool TEXT NOT NULL DEFAULT '';

-- +goose Down
ALTER TABLE runs DROP COLUMN tool;
