package cli

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gantry-iac/gantry/internal/apiv1"
	"github.com/gantry-iac/gantry/internal/audit"
	"github.com/gantry-iac/gantry/internal/db"
)

func auditServer(t *testing.T) (url, token string, d *db.DB) {
	t.Helper()
	ta := newTestAPI(t)
	ta.API.Audit = audit.NewService(ta.D, nil)
	ta.serve(ta.API.Audited)
	return ta.URL, ta.Token, ta.D
}

func TestAuditCommands(t *testing.T) {
	isolate(t)
	url, token, d := auditServer(t)
	gantry := func(args ...string) (int, string, string) {
		return runMain(append(args, "--url", url, "--token", token)...)
	}
	for _, id := range []string{"dev", "prod"} {
		code, out, errOut := gantry("space", "create", "--id", id, "--name", id)
		wantRun(t, code, out, errOut, 0)
	}
	code, out, errOut := gantry("api-key", "create", "--name", "ci")
	wantRun(t, code, out, errOut, 0)

	// list: newest first, with filters.
	code, out, errOut = gantry("audit", "list")
	wantRun(t, code, out, errOut, 0, "SEQ", "ACTION", "api_key.create", "space.create", "space/prod", "api_key::admin", "success", "127.0.0.1")
	if strings.Index(out, "api_key.create") > strings.Index(out, "space.create") {
		t.Errorf("not newest first:\n%s", out)
	}
	code, out, errOut = gantry("audit", "list", "--action", "space.*", "--subject", "dev", "--since", "1h", "-o", "json")
	wantRun(t, code, out, errOut, 0)
	var evs []apiv1.AuditEvent
	if err := json.Unmarshal([]byte(out), &evs); err != nil || len(evs) != 1 || evs[0].SubjectID != "dev" || evs[0].Seq != 1 {
		t.Fatalf("filtered list = %v, %s", err, out)
	}
	code, out, errOut = gantry("audit", "list", "--limit", "2", "-o", "json")
	wantRun(t, code, out, errOut, 0)
	if err := json.Unmarshal([]byte(out), &evs); err != nil || len(evs) != 2 || evs[0].Seq != 3 {
		t.Fatalf("list --limit 2 = %s", out)
	}
	code, out, errOut = gantry("audit", "list", "--until", time.Now().Add(-time.Hour).Format(time.RFC3339), "-o", "json")
	wantRun(t, code, out, errOut, 0)
	if strings.TrimSpace(out) != "[]" {
		t.Errorf("list --until an hour ago = %s", out)
	}
	code, _, _ = gantry("audit", "list", "--since", "yesterday")
	if code != 2 {
		t.Errorf("--since yesterday: exit %d, want 2", code)
	}

	// export: JSON lines to stdout, CSV to a file.
	code, out, errOut = gantry("audit", "export")
	wantRun(t, code, out, errOut, 0)
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 3 || !strings.Contains(lines[0], `"seq":1`) {
		t.Fatalf("export:\n%s", out)
	}
	file := filepath.Join(t.TempDir(), "audit.csv")
	code, out, errOut = gantry("audit", "export", "--format", "csv", "--out", file)
	wantRun(t, code, out, errOut, 0)
	raw, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	rows, err := csv.NewReader(strings.NewReader(string(raw))).ReadAll()
	// The first export is an event too: 4 events and the header.
	if err != nil || len(rows) != 5 || rows[0][6] != "action" || rows[4][6] != "audit.export" {
		t.Fatalf("csv export = %v:\n%s", err, raw)
	}
	code, _, _ = gantry("audit", "export", "--format", "xml")
	if code != 2 {
		t.Errorf("--format xml: exit %d, want 2", code)
	}

	// verify: intact, then broken after someone edits a row.
	code, out, errOut = gantry("audit", "verify")
	wantRun(t, code, out, errOut, 0, "intact", "Head hash:")
	if _, err := d.Exec(context.Background(), `UPDATE audit_events SET subject_id = 'staging' WHERE seq = 2`); err != nil {
		t.Fatal(err)
	}
	code, out, errOut = gantry("audit", "verify")
	wantRun(t, code, out, errOut, 1, "BROKEN", "Broken at:", "hash mismatch")
	if !strings.Contains(errOut, "broken at event 2") {
		t.Errorf("stderr does not name the broken link:\n%s", errOut)
	}
	code, out, errOut = gantry("audit", "verify", "-o", "json")
	wantRun(t, code, out, errOut, 1, `"ok": false`, `"broken_at": 2`)
}
