-- +goose Up
-- The servers sharing this database, each recording every few seconds that
-- it is alive: a server sends wake-ups to the others (PostgreSQL NOTIFY)
-- only while another one is.
CREATE TABLE replicas (
    instance TEXT PRIMARY KEY,
    seen_at  BIGINT NOT NULL
);

-- +goose Down
DROP TABLE replicas;
