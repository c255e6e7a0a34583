-- +goose Up
-- A binding of a custom role deleted while it was being bound (two
-- replicas on PostgreSQL raced before roles were locked) names no role:
-- it grants nothing, but a later role of the same id would give it that
-- role's actions. Such bindings go. The built-in roles are not stored.
DELETE FROM role_bindings
WHERE role_id NOT IN ('space-reader', 'space-writer', 'space-admin')
  AND role_id NOT IN (SELECT id FROM roles);

-- +goose Down
SELECT 1;
