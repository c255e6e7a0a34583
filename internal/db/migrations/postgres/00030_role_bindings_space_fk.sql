-- +goose Up
-- A binding in a space deleted while it was being made (two replicas on
-- PostgreSQL raced before spaces were locked) would apply to any later
-- space of the same id. Such bindings go, and a foreign key keeps a
-- binding's space from going from under it (deleting a space that holds
-- bindings is refused, as before).
DELETE FROM role_bindings WHERE space_id NOT IN (SELECT id FROM spaces);
ALTER TABLE role_bindings ADD CONSTRAINT role_bindings_space_id_fkey FOREIGN KEY (space_id) REFERENCES spaces(id);

-- +goose Down
ALTER TABLE role_bindings DROP CONSTRAINT role_bindings_space_id_fkey;
