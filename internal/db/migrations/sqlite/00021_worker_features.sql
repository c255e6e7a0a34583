-- +goose Up
-- What a worker says it can do at register (a JSON array, e.g.
-- ["targets"]): a job that needs a feature its worker lacks is not handed
-- to it (a worker built before targeted runs would apply everything).
ALTER TABLE workers ADD COLUMN features TEXT NOT NULL DEFAULT '[]';

-- +goose Down
ALTER TABLE workers DROP COLUMN features;
