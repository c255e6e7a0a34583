package cli

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/gantry-iac/gantry/internal/db"
	"github.com/gantry-iac/gantry/internal/events"
	runpkg "github.com/gantry-iac/gantry/internal/run"
	"github.com/gantry-iac/gantry/internal/secrets"
	spacesvc "github.com/gantry-iac/gantry/internal/space"
	stacksvc "github.com/gantry-iac/gantry/internal/stack"
	"github.com/gantry-iac/gantry/internal/state"
)

// admin prune --dry-run says what the retention would delete, per stack,
// and deletes nothing; without --dry-run it deletes that and audits it.
func TestAdminPrune(t *testing.T) {
	adminEnv(t)
	t.Setenv("GANTRY_RUN_RETENTION", "")
	t.Setenv("GANTRY_STATE_RETENTION_VERSIONS", "")
	ctx := context.Background()
	dir := t.TempDir()
	count := func(q string) int {
		var n int
		withDB(t, dir, func(d *db.DB) {
			if err := d.QueryRow(ctx, q).Scan(&n); err != nil {
				t.Fatal(err)
			}
		})
		return n
	}
	withDB(t, dir, func(d *db.DB) {
		box, err := secrets.NewBox(bytes.Repeat([]byte{1}, 32))
		if err != nil {
			t.Fatal(err)
		}
		if err := spacesvc.NewService(d).EnsureRoot(ctx); err != nil {
			t.Fatal(err)
		}
		if _, err := stacksvc.NewService(d, box).Create(ctx, stacksvc.Stack{ID: "web", Repository: "https://example.com/infra.git"}); err != nil {
			t.Fatal(err)
		}
		runs := runpkg.NewService(d, events.NewHub(), box, slog.New(slog.DiscardHandler))
		for range 3 {
			r, err := runs.Create(ctx, runpkg.New{StackID: "web", Type: runpkg.Proposed, TriggeredBy: "alice"})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := d.Exec(ctx, `UPDATE runs SET state = 'FINISHED', updated_at = $2, log_size = 2048 WHERE id = $1`,
				r.ID, time.Now().Add(-2*time.Hour).UnixNano()); err != nil {
				t.Fatal(err)
			}
		}
		st := state.NewService(d, box)
		for serial := 1; serial <= 3; serial++ {
			if _, err := st.Write(ctx, "web", []byte(fmt.Sprintf(`{"version":4,"serial":%d,"lineage":"l","resources":[]}`, serial)), "", "", "test"); err != nil {
				t.Fatal(err)
			}
		}
	})

	if code, _, errOut := runMain("admin", "prune", "--data-dir", dir); code != 2 || !strings.Contains(errOut, "nothing to prune") {
		t.Fatalf("prune without a retention = %d, %s", code, errOut)
	}
	if code, _, errOut := runMain("admin", "prune", "--data-dir", dir, "--run-retention", "5m"); code != 2 || !strings.Contains(errOut, "at least 1h") {
		t.Fatalf("prune --run-retention 5m = %d, %s", code, errOut)
	}
	if code, _, errOut := runMain("admin", "prune", "--data-dir", dir, "--state-retention-versions", "-1", "--dry-run"); code != 2 || !strings.Contains(errOut, "got -1") {
		t.Errorf("a negative version count: exit %d stderr %q, want the flag's own message", code, errOut)
	}
	args := []string{"admin", "prune", "--data-dir", dir, "--run-retention", "1h", "--state-retention-versions", "1"}
	code, out, errOut := runMain(append(args, "--dry-run")...)
	if code != 0 {
		t.Fatalf("prune --dry-run = %d: %s", code, errOut)
	}
	for _, want := range []string{"Would delete 2 runs that ended before", "with 4 KiB of logs", "Would delete 2 state versions",
		"beyond the newest 1 of each stack", "web    2     4 KiB  2               106 bytes"} {
		if !strings.Contains(out, want) {
			t.Errorf("dry run output lacks %q:\n%s", want, out)
		}
	}
	if count(`SELECT COUNT(*) FROM runs`) != 3 || count(`SELECT COUNT(*) FROM state_versions`) != 3 {
		t.Fatal("the dry run deleted something")
	}
	code, out, errOut = runMain(args...)
	if code != 0 || !strings.Contains(out, "Deleted 2 runs") || !strings.Contains(out, "Deleted 2 state versions") {
		t.Fatalf("prune = %d: %s%s", code, out, errOut)
	}
	if count(`SELECT COUNT(*) FROM runs`) != 1 || count(`SELECT COUNT(*) FROM state_versions`) != 1 ||
		count(`SELECT COUNT(*) FROM audit_events WHERE action IN ('run.prune', 'state.prune') AND actor = 'gantry'`) != 2 {
		t.Fatal("prune did not delete and audit what the dry run said")
	}
}
