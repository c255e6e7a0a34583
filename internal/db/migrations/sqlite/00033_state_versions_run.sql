-- +goose Up
-- The state versions a run saved (run retention keeps the runs a stored
-- version refers to, and a run's last saved serial is looked up by it)
-- without reading the versions' documents.
CREATE INDEX state_versions_run ON state_versions(stack_id, run_id);

-- +goose Down
DROP INDEX state_versions_run;
