-- +goose Up
-- The endpoint a delivery was made for: the created_at of the endpoint
-- (endpoint ids can be reused after a delete, maybe in another space), so
-- that the dispatcher does not send a delivery to a newer endpoint with the
-- same id. Pending deliveries are bound to the endpoint of their id now; 0
-- (an endpoint that does not exist) matches none.
ALTER TABLE notify_deliveries ADD COLUMN endpoint_created_at BIGINT NOT NULL DEFAULT 0;
UPDATE notify_deliveries SET endpoint_created_at = COALESCE(
    (SELECT e.created_at FROM notify_endpoints e WHERE e.id = notify_deliveries.endpoint_id), 0)
WHERE status IN ('PENDING', 'SENDING');

-- +goose Down
ALTER TABLE notify_deliveries DROP COLUMN endpoint_created_at;
