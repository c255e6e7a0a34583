package db_test

import (
	"context"
	"slices"
	"testing"

	"github.com/gantry-iac/gantry/internal/db"
	"github.com/gantry-iac/gantry/internal/db/dbtest"
)

// Migration 34 gives the flags runs carry owners: the policies whose
// receipts on the run set them; a flag no receipt claims, or one the run
// no longer carries, gets none. On both databases.
func TestMigrationFlagOwners(t *testing.T) {
	for _, dialect := range []string{"sqlite", "postgres"} {
		t.Run(dialect, func(t *testing.T) {
			ctx := context.Background()
			url, dir := "", t.TempDir()
			if dialect == "postgres" {
				url, dir = dbtest.PostgresURL(t), ""
			}
			old, err := db.Open(db.MigrateUpTo(ctx, 33), url, dir, nil)
			if err != nil {
				t.Fatal(err)
			}
			for _, q := range []string{
				`INSERT INTO spaces (id, name, created_at, updated_at) VALUES ('root', 'root', 1, 1)`,
				`INSERT INTO stacks (id, name, space_id, repository, branch, tool, created_at, updated_at) VALUES ('st', 'st', 'root', 'r', 'main', 'opentofu', 1, 1)`,
				`INSERT INTO runs (id, stack_id, space_id, type, state, blocking, flags, created_at, updated_at) VALUES
					('run-1', 'st', 'root', 'TRACKED', 'FINISHED', TRUE, '["both","one","inherited"]', 1, 1)`,
				`INSERT INTO policy_receipts (id, run_id, policy_id, policy_name, policy_version, type, outcome, flags, at) VALUES
					('rcp-1', 'run-1', 'p1', 'p1', 1, 'PLAN', 'allow', '["both","one","gone"]', 1),
					('rcp-2', 'run-1', 'p2', 'p2', 1, 'APPROVAL', 'approve', '["both"]', 2),
					('rcp-3', 'run-1', 'p1', 'p1', 1, 'APPROVAL', 'approve', '["both"]', 3),
					('rcp-4', 'run-1', 'p3', 'p3', 1, 'PLAN', 'allow', '[]', 4)`,
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
			owners, err := db.Collect(ctx, d, func(s db.Scanner) (string, error) {
				var flag, policy string
				return flag + ":" + policy, s.Scan(&flag, &policy)
			}, `SELECT flag, policy_id FROM run_flag_owners WHERE run_id = 'run-1' ORDER BY flag, policy_id`)
			if err != nil {
				t.Fatal(err)
			}
			if want := []string{"both:p1", "both:p2", "one:p1"}; !slices.Equal(owners, want) {
				t.Errorf("flag owners after migrating = %v, want %v", owners, want)
			}
		})
	}
}
