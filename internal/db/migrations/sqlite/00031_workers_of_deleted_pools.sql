-- +goose Up
-- A worker that registered while its pool was being deleted (two replicas
-- on PostgreSQL raced before pools were locked) outlived the pool: with
-- its worker token it would claim the jobs of a later pool of the same
-- id, maybe another team's. Such workers go (the built-in pool's workers
-- have pool_id '').
DELETE FROM workers WHERE pool_id <> '' AND pool_id NOT IN (SELECT id FROM worker_pools);

-- +goose Down
SELECT 1;
