package db_test

import (
	"context"
	"slices"
	"testing"

	"github.com/gantry-iac/gantry/internal/db"
	"github.com/gantry-iac/gantry/internal/db/dbtest"
)

// The migrations that mend references left dangling by races from before
// rows were locked (see rowlock.go) remove what names nothing and keep
// the rest, on both databases.
func TestMigrationsMendDanglingReferences(t *testing.T) {
	for _, dialect := range []string{"sqlite", "postgres"} {
		t.Run(dialect, func(t *testing.T) {
			ctx := context.Background()
			url, dir := "", t.TempDir()
			if dialect == "postgres" {
				url, dir = dbtest.PostgresURL(t), ""
			}
			old, err := db.Open(db.MigrateUpTo(ctx, 27), url, dir, nil)
			if err != nil {
				t.Fatal(err)
			}
			for _, q := range []string{
				`INSERT INTO spaces (id, name, created_at, updated_at) VALUES ('root', 'root', 1, 1)`,
				`INSERT INTO roles (id, name, actions, created_at) VALUES ('kept', 'kept', '["space:read"]', 1)`,
				`INSERT INTO role_bindings (id, role_id, space_id, actor_type, actor_id, created_at) VALUES
					('rbd-builtin', 'space-reader', 'root', 'group', 'g', 1),
					('rbd-custom', 'kept', 'root', 'group', 'g', 1),
					('rbd-no-role', 'gone', 'root', 'group', 'g', 1),
					('rbd-no-space', 'space-writer', 'gone', 'group', 'g', 1)`,
				`INSERT INTO worker_pools (id, name, space_id, token_hash, created_at, updated_at) VALUES ('eu', 'eu', 'root', 'h', 1, 1)`,
				`INSERT INTO workers (id, pool_id, name, token_hash, registered_at, last_seen_at) VALUES
					('wrk-builtin', '', 'b', 'h1', 1, 1),
					('wrk-eu', 'eu', 'e', 'h2', 1, 1),
					('wrk-gone', 'gone', 'g', 'h3', 1, 1)`,
			} {
				if _, err := old.Exec(ctx, q); err != nil {
					t.Fatalf("%s: %v", q, err)
				}
			}
			if err := old.Close(); err != nil {
				t.Fatal(err)
			}
			d, err := db.Open(ctx, url, dir, nil)
			if err != nil {
				t.Fatal(err)
			}
			defer d.Close()
			ids, err := db.Collect(ctx, d, func(s db.Scanner) (string, error) {
				var id string
				return id, s.Scan(&id)
			}, `SELECT id FROM role_bindings ORDER BY id`)
			if err != nil {
				t.Fatal(err)
			}
			if want := []string{"rbd-builtin", "rbd-custom"}; !slices.Equal(ids, want) {
				t.Errorf("role bindings after migrating = %v, want %v", ids, want)
			}
			workers, err := db.Collect(ctx, d, func(s db.Scanner) (string, error) {
				var id string
				return id, s.Scan(&id)
			}, `SELECT id FROM workers ORDER BY id`)
			if err != nil {
				t.Fatal(err)
			}
			if want := []string{"wrk-builtin", "wrk-eu"}; !slices.Equal(workers, want) {
				t.Errorf("workers after migrating = %v, want %v", workers, want)
			}
			// The binding's space is a foreign key now.
			_, err = d.Exec(ctx, `INSERT INTO role_bindings (id, role_id, space_id, actor_type, actor_id, created_at) VALUES ('rbd-x', 'space-reader', 'gone', 'group', 'g', 1)`)
			if !db.IsForeignKeyViolation(err) {
				t.Errorf("a binding in a missing space: %v, want a foreign key violation", err)
			}
		})
	}
}
