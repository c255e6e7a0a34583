-- +goose Up
-- Worker pools: private workers register with a pool token (only its hash
-- is kept) and run the jobs of the stacks that name the pool.
CREATE TABLE worker_pools (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    space_id    TEXT NOT NULL REFERENCES spaces(id),
    labels      TEXT NOT NULL DEFAULT '[]',
    description TEXT NOT NULL DEFAULT '',
    token_hash  TEXT NOT NULL,
    public_key  TEXT NOT NULL DEFAULT '', -- seals secrets and workspaces (package seal)
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL
);
CREATE INDEX worker_pools_space ON worker_pools(space_id, id);

ALTER TABLE workers ADD COLUMN labels TEXT NOT NULL DEFAULT '{}';
ALTER TABLE workers ADD COLUMN tools TEXT NOT NULL DEFAULT '{}';
ALTER TABLE workers ADD COLUMN concurrency BIGINT NOT NULL DEFAULT 1;
ALTER TABLE workers ADD COLUMN drained BOOLEAN NOT NULL DEFAULT FALSE;
ALTER TABLE workers ADD COLUMN address TEXT NOT NULL DEFAULT '';
CREATE INDEX workers_pool ON workers(pool_id, id);

-- +goose Down
DROP INDEX workers_pool;
ALTER TABLE workers DROP COLUMN address;
ALTER TABLE workers DROP COLUMN drained;
ALTER TABLE workers DROP COLUMN concurrency;
ALTER TABLE workers DROP COLUMN tools;
ALTER TABLE workers DROP COLUMN labels;
DROP TABLE worker_pools;
