-- +goose Up
-- A run's log is stored up to a limit (--max-run-log-size). Workers
-- append at offsets of what they sent (log_received), which goes on past
-- the limit; log_size stays what is stored, Gantry's own lines included
-- (a closing line, the limit's notes); log_dropped counts what was
-- received and not stored. What workers sent so far is what is stored but
-- the closing line (00028).
ALTER TABLE runs ADD COLUMN log_received BIGINT NOT NULL DEFAULT 0;
ALTER TABLE runs ADD COLUMN log_dropped BIGINT NOT NULL DEFAULT 0;
UPDATE runs SET log_received = log_size - closing_log_size;

-- +goose Down
ALTER TABLE runs DROP COLUMN log_dropped;
ALTER TABLE runs DROP COLUMN log_received;
