-- +goose Up
-- The public key of the pool key pair a worker holds ('' for none): a
-- worker whose key no longer matches its pool's (keygen --replace) gets no
-- job it could not open.
ALTER TABLE workers ADD COLUMN public_key TEXT NOT NULL DEFAULT '';

-- +goose Down
ALTER TABLE workers DROP COLUMN public_key;
