-- +goose Up
-- Where in a run's log the server put the closing line of a run it ended
-- itself ("[gantry] Run failed: <reason>", a lost worker's run), and its
-- length: a worker still writing does not know of that line, and its
-- later appends, at its own offsets, go after it (-1: no such line).
ALTER TABLE runs ADD COLUMN closing_log_at BIGINT NOT NULL DEFAULT -1;
ALTER TABLE runs ADD COLUMN closing_log_size BIGINT NOT NULL DEFAULT 0;

-- +goose Down
ALTER TABLE runs DROP COLUMN closing_log_size;
ALTER TABLE runs DROP COLUMN closing_log_at;
