-- +goose Up
-- A failed drift check no longer overwrites the last good one: when the
-- last successful check ended, its run, and why the last check failed.
ALTER TABLE drift_checks ADD COLUMN last_good_run_id TEXT NOT NULL DEFAULT '';
ALTER TABLE drift_checks ADD COLUMN last_good_checked_at BIGINT NOT NULL DEFAULT 0;
ALTER TABLE drift_checks ADD COLUMN error TEXT NOT NULL DEFAULT '';
UPDATE drift_checks SET last_good_run_id = last_run_id, last_good_checked_at = last_checked_at WHERE outcome <> 'failed';
-- A stack whose last check failed: its open drift was last seen by its last
-- good check (a clean one left no trace, so this can only be older).
UPDATE drift_checks SET last_good_checked_at = COALESCE((SELECT MAX(d.last_detected_at) FROM drift_resources d
	WHERE d.stack_id = drift_checks.stack_id AND d.resolved_at = 0), 0) WHERE outcome = 'failed';
UPDATE drift_checks SET last_good_run_id = COALESCE((SELECT MAX(d.last_run_id) FROM drift_resources d
	WHERE d.stack_id = drift_checks.stack_id AND d.resolved_at = 0 AND d.last_detected_at = drift_checks.last_good_checked_at), '')
	WHERE outcome = 'failed';

-- +goose Down
ALTER TABLE drift_checks DROP COLUMN error;
ALTER TABLE drift_checks DROP COLUMN last_good_checked_at;
ALTER TABLE drift_checks DROP COLUMN last_good_run_id;
