-- +goose Up
-- Where each state of a run begins in its stored log (bytes), for the
-- spacelift::logs::<phase> placeholders of notification webhooks: the
-- position the worker reports with a phase (its own log stream's offset,
-- mapped to the stored log), the stored log's size for the transitions
-- the server makes. NULL: unknown (an older worker, or before this).
ALTER TABLE run_transitions ADD COLUMN log_offset BIGINT;

-- +goose Down
ALTER TABLE run_transitions DROP COLUMN log_offset;
