package server_test

import (
	"context"
	"encoding/base64"
	"io"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gantry-iac/gantry/internal/audit"
	"github.com/gantry-iac/gantry/internal/contexts"
	"github.com/gantry-iac/gantry/internal/db"
	"github.com/gantry-iac/gantry/internal/db/dbtest"
	"github.com/gantry-iac/gantry/internal/events"
	"github.com/gantry-iac/gantry/internal/notify"
	"github.com/gantry-iac/gantry/internal/run"
	"github.com/gantry-iac/gantry/internal/secrets"
	"github.com/gantry-iac/gantry/internal/server"
	"github.com/gantry-iac/gantry/internal/space"
	"github.com/gantry-iac/gantry/internal/stack"
)

const dkPlan = `{"format_version":"1.2","planned_values":{"root_module":{}}}`

// dkRepo is a repository URL carrying a credential (sealed).
const dkRepo = "https://ci-bot:repo-s3cret@git.example.com/private.git"

// writeEveryKind stores a value of every kind Gantry seals with the data
// key, through the services where they are simple to drive: on top of
// writeData (a stack secret, a state version), secret context variables
// and files, a run artifact, webhook and email endpoint secrets, an audit
// endpoint's secret and headers, and an integration's managed secret. The
// server's start made the OIDC signing key. It returns the run's id.
func writeEveryKind(t *testing.T, d *db.DB, box *secrets.Box) string {
	t.Helper()
	ctx := context.Background()
	writeData(t, d, box)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	stacks := stack.NewService(d, box)
	if _, err := stacks.Create(ctx, stack.Stack{ID: "private", Repository: dkRepo}); err != nil {
		t.Fatal(err)
	}
	ctxs := contexts.NewService(d, box, space.NewService(d), stacks)
	if _, err := ctxs.Create(ctx, contexts.Context{ID: "aws", Name: "aws", Space: "root"}); err != nil {
		t.Fatal(err)
	}
	if _, err := ctxs.SetEnv(ctx, "aws", contexts.EnvVar{Name: "AWS_SECRET", Value: "ctx-s3cret", Secret: true}); err != nil {
		t.Fatal(err)
	}
	if _, err := ctxs.SetFile(ctx, "aws", contexts.File{Path: "creds/key.pem", Content: []byte("file-s3cret"), Secret: true}); err != nil {
		t.Fatal(err)
	}
	if _, err := ctxs.Attach(ctx, "aws", "net", 0); err != nil {
		t.Fatal(err)
	}
	runs := run.NewService(d, events.NewHub(), box, log)
	r, err := runs.Create(ctx, run.New{StackID: "net", Type: run.Proposed, TriggeredBy: "test"})
	if err != nil {
		t.Fatal(err)
	}
	if err := runs.PutArtifact(ctx, r.ID, run.ArtifactPlanJSON, []byte(dkPlan)); err != nil {
		t.Fatal(err)
	}
	notes := notify.NewService(d, box, log)
	if _, err := notes.CreateEndpoint(ctx, notify.Endpoint{ID: "hook", SpaceID: "root", Kind: notify.KindWebhook, URL: "https://example.com/hook",
		Secret: "hook-s3cret", Headers: map[string]string{"Authorization": "Bearer hook-token"}, Enabled: true}); err != nil {
		t.Fatal(err)
	}
	if _, err := notes.CreateEndpoint(ctx, notify.Endpoint{ID: "mail", SpaceID: "root", Kind: notify.KindEmail, Enabled: true,
		Email: notify.EmailSettings{Host: "smtp.example.com", Username: "u", Password: "smtp-s3cret", From: "gantry@example.com", To: []string{"ops@example.com"}}}); err != nil {
		t.Fatal(err)
	}
	fwd := audit.NewForwarder(audit.NewService(d, log), box, log)
	if _, err := fwd.CreateEndpoint(ctx, audit.ForwardEndpoint{ID: "siem", URL: "https://siem.example.com/in", Secret: "siem-s3cret",
		Headers: map[string]string{"X-Token": "siem-token"}, Enabled: true}, 0); err != nil {
		t.Fatal(err)
	}
	now := time.Now().UnixNano()
	if _, err := d.Exec(ctx, `INSERT INTO integrations (id, name, space_id, type, created_at, updated_at) VALUES ('az', 'az', 'root', 'azure', $1, $1)`, now); err != nil {
		t.Fatal(err)
	}
	var col secrets.SealedColumn
	for _, c := range server.SealedColumns() {
		if c.Table == "integration_secrets" {
			col = c
		}
	}
	sealed := base64.StdEncoding.EncodeToString(box.Seal([]byte("azure-s3cret"), col.AAD([]any{"az", "kid-1"})))
	if _, err := d.Exec(ctx, `INSERT INTO integration_secrets (integration_id, key_id, secret_sealed, created_at, expires_at) VALUES ('az', 'kid-1', $1, $2, $2)`,
		sealed, now); err != nil {
		t.Fatal(err)
	}
	return r.ID
}

// looksSealed reports whether a column value has the form of what
// secrets.Box seals (version byte 1, then at least a nonce and a tag),
// raw or in one of the base64 encodings.
func looksSealed(v any) bool {
	var forms [][]byte
	switch v := v.(type) {
	case []byte:
		forms = append(forms, v)
		v2 := string(v)
		for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawURLEncoding} {
			if b, err := enc.DecodeString(v2); err == nil {
				forms = append(forms, b)
			}
		}
	case string:
		forms = append(forms, []byte(v))
		for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawURLEncoding} {
			if b, err := enc.DecodeString(v); err == nil {
				forms = append(forms, b)
			}
		}
	}
	for _, b := range forms {
		if len(b) >= 1+12+16 && b[0] == 1 {
			return true
		}
	}
	return false
}

// tableColumns lists every column of every table of the schema.
func tableColumns(t *testing.T, d *db.DB) map[string][]string {
	t.Helper()
	ctx := context.Background()
	q := `SELECT m.name, p.name FROM sqlite_master m JOIN pragma_table_info(m.name) p WHERE m.type = 'table' AND m.name NOT LIKE 'sqlite_%'`
	if d.Dialect == db.Postgres {
		q = `SELECT table_name, column_name FROM information_schema.columns WHERE table_schema = current_schema()`
	}
	rows, err := d.Query(ctx, q)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	out := map[string][]string{}
	for rows.Next() {
		var tbl, col string
		if err := rows.Scan(&tbl, &col); err != nil {
			t.Fatal(err)
		}
		out[tbl] = append(out[tbl], col)
	}
	return out
}

// findSealed scans every column of every table for values that look
// sealed. The settings row encryption_check, sealed by the master key (not
// the data key), is left out.
func findSealed(t *testing.T, d *db.DB) map[string]int {
	t.Helper()
	found := map[string]int{}
	for tbl, cols := range tableColumns(t, d) {
		for _, col := range cols {
			q := `SELECT ` + col + ` FROM ` + tbl
			if tbl == "settings" {
				q += ` WHERE name <> 'encryption_check'`
			}
			rows, err := d.Query(context.Background(), q)
			if err != nil {
				t.Fatalf("%s.%s: %v", tbl, col, err)
			}
			for rows.Next() {
				var v any
				if err := rows.Scan(&v); err != nil {
					t.Fatal(err)
				}
				if looksSealed(v) {
					found[tbl+"."+col]++
				}
			}
			rows.Close()
		}
	}
	return found
}

// checkColumns opens every value of the sealed columns: each must open with
// want and not with the other box. It returns how many it opened.
func checkColumns(t *testing.T, d *db.DB, want, other *secrets.Box) map[string]int {
	t.Helper()
	opened := map[string]int{}
	for _, c := range server.SealedColumns() {
		cond := "1 = 1"
		if c.Where != "" {
			cond = c.Where
		}
		sel := strings.Join(slices.Concat(c.Keys, c.Extra, []string{c.Column}), ", ")
		rows, err := d.Query(context.Background(), `SELECT `+sel+` FROM `+c.Table+` WHERE `+cond)
		if err != nil {
			t.Fatalf("%s: %v", c.Name(), err)
		}
		for rows.Next() {
			vals := make([]any, len(c.Keys)+len(c.Extra)+1)
			ptrs := make([]any, len(vals))
			for i := range vals {
				ptrs[i] = &vals[i]
			}
			if err := rows.Scan(ptrs...); err != nil {
				t.Fatal(err)
			}
			for i, v := range vals[:len(vals)-1] {
				if b, ok := v.([]byte); ok {
					vals[i] = string(b)
				}
			}
			raw := vals[len(vals)-1]
			var sealed []byte
			switch v := raw.(type) {
			case []byte:
				sealed = v
			case string:
				sealed = []byte(v)
			}
			if c.Encoding != secrets.Raw {
				enc := base64.StdEncoding
				if c.Encoding == secrets.Base64URL {
					enc = base64.RawURLEncoding
				}
				if sealed, err = enc.DecodeString(string(sealed)); err != nil {
					t.Fatalf("%s: %v", c.Name(), err)
				}
			}
			if len(sealed) == 0 {
				continue
			}
			aad := c.AAD(vals[:len(vals)-1])
			if _, err := want.Open(sealed, aad); err != nil {
				t.Errorf("%s %v: does not open with the data key: %v", c.Name(), vals[:len(vals)-1], err)
			}
			if _, err := other.Open(sealed, aad); err == nil {
				t.Errorf("%s %v: opens with the old data key", c.Name(), vals[:len(vals)-1])
			}
			opened[c.Name()]++
		}
		rows.Close()
	}
	return opened
}

func TestRotateDataKey(t *testing.T) {
	eachDatabase(t, func(t *testing.T, url string) {
		ctx := context.Background()
		dir := t.TempDir()
		k1 := secrets.GenerateKey()
		var logs strings.Builder
		startStop(t, encConfig(dir, url, k1), &logs) // makes the data key and the OIDC signing key

		var oldBox *secrets.Box
		var runID string
		withDB(t, url, dir, func(d *db.DB) {
			var err error
			if oldBox, _, err = secrets.UnlockDataKey(ctx, d, mustKey(t, k1)); err != nil {
				t.Fatal(err)
			}
			runID = writeEveryKind(t, d, oldBox)
		})
		oldKey := storedDataKey(t, url, dir, mustKey(t, k1))

		withDB(t, url, dir, func(d *db.DB) {
			// Every value that looks sealed is in a column RotateDataKey
			// re-encrypts: a column added without its SealedColumns entry
			// fails here.
			found := findSealed(t, d)
			registered := map[string]bool{}
			for _, c := range server.SealedColumns() {
				registered[c.Name()] = true
			}
			for col, n := range found {
				if !registered[col] {
					t.Errorf("%s holds %d value(s) that look sealed, but is not in server.SealedColumns: rotating the data key would leave them under the old key", col, n)
				}
			}
			for col := range registered {
				if found[col] == 0 {
					t.Errorf("the test stores no value in %s: cover it in writeEveryKind", col)
				}
			}

			old, next, err := server.RotateDataKey(ctx, d, mustKey(t, k1))
			if err != nil {
				t.Fatalf("rotate: %v", err)
			}
			if old.ID == next.ID || !strings.HasPrefix(next.ID, "dk-") || next.Adopted {
				t.Errorf("data key %+v -> %+v", old, next)
			}
		})
		newKey := storedDataKey(t, url, dir, mustKey(t, k1))
		if string(newKey) == string(oldKey) {
			t.Fatal("the data key did not change")
		}
		newBox, err := secrets.NewBox(newKey)
		if err != nil {
			t.Fatal(err)
		}
		withDB(t, url, dir, func(d *db.DB) {
			opened := checkColumns(t, d, newBox, oldBox)
			for _, c := range server.SealedColumns() {
				if opened[c.Name()] == 0 {
					t.Errorf("no value of %s checked", c.Name())
				}
			}
			// The old data key opens nothing: every value that looks
			// sealed is in a checked column.
			for col, n := range findSealed(t, d) {
				if opened[col] != n {
					t.Errorf("%s: %d values look sealed, %d checked", col, n, opened[col])
				}
			}
			// And the services read them all back.
			log := slog.New(slog.NewTextHandler(io.Discard, nil))
			box, _, err := secrets.UnlockDataKey(ctx, d, mustKey(t, k1))
			if err != nil {
				t.Fatal(err)
			}
			eff, err := contexts.NewService(d, box, space.NewService(d), stack.NewService(d, box)).Effective(ctx, "net", true)
			if err != nil {
				t.Fatal(err)
			}
			got := map[string]string{}
			for _, v := range eff.Env {
				got[v.Name] = v.Value
			}
			for _, f := range eff.Files {
				got[f.Path] = string(f.Content)
			}
			if got["PW"] != "s3cret-pw" || got["AWS_SECRET"] != "ctx-s3cret" || got["creds/key.pem"] != "file-s3cret" {
				t.Errorf("effective environment after rotation: %v", got)
			}
			if plan, err := run.NewService(d, events.NewHub(), box, log).Artifact(ctx, runID, run.ArtifactPlanJSON); err != nil || string(plan) != dkPlan {
				t.Errorf("plan after rotation: %q %v", plan, err)
			}
			stacks := stack.NewService(d, box)
			if st, err := stacks.Get(ctx, "private"); err != nil {
				t.Error(err)
			} else if u, err := stacks.CloneURL(st); err != nil || u != dkRepo {
				t.Errorf("repository URL after rotation: %q %v", u, err)
			}
		})
		checkData(t, url, dir, mustKey(t, k1))
		// A server starts, signs with the re-encrypted OIDC key and serves
		// the state.
		s, err := start(t, encConfig(dir, url, k1))
		if err != nil {
			t.Fatalf("start after the rotation: %v", err)
		}
		checkServedState(t, s)
		if status, body := s.get(t, "/.well-known/jwks", ""); status != 200 || !strings.Contains(body, `"keys"`) {
			t.Errorf("jwks: %d %s", status, body)
		}
		s.stop(t)
		logs.WriteString(s.logs.String() + s.out.String())
		noKeysIn(t, logs.String(), oldKey, newKey, mustKey(t, k1))
	})
}

// An interrupted rotation (here: a value that does not open, met after
// other columns were re-encrypted) changes nothing: the old data key
// still opens everything.
func TestRotateDataKeyInterrupted(t *testing.T) {
	eachDatabase(t, func(t *testing.T, url string) {
		ctx := context.Background()
		dir := t.TempDir()
		k1 := secrets.GenerateKey()
		var logs strings.Builder
		startStop(t, encConfig(dir, url, k1), &logs)
		before := settingsRows(t, url, dir)
		withDB(t, url, dir, func(d *db.DB) {
			box, _, err := secrets.UnlockDataKey(ctx, d, mustKey(t, k1))
			if err != nil {
				t.Fatal(err)
			}
			writeEveryKind(t, d, box)
			// The last column's value is sealed with another key.
			cols := server.SealedColumns()
			last := cols[len(cols)-1]
			stray, _ := secrets.NewBox(mustKey(t, secrets.GenerateKey()))
			if _, err := d.Exec(ctx, `UPDATE `+last.Table+` SET `+last.Column+` = $1`,
				base64.StdEncoding.EncodeToString(stray.Seal([]byte("x"), last.AAD([]any{"az", "kid-1"})))); err != nil {
				t.Fatal(err)
			}
			_, _, err = server.RotateDataKey(ctx, d, mustKey(t, k1))
			if err == nil || !strings.Contains(err.Error(), last.Name()) || !strings.Contains(err.Error(), "nothing was changed") {
				t.Fatalf("rotate = %v, want a refusal naming %s", err, last.Name())
			}
			if _, err := d.Exec(ctx, `DELETE FROM `+last.Table); err != nil {
				t.Fatal(err)
			}
			opened := checkColumns(t, d, box, stray)
			if opened["stack_env.value"] == 0 || opened["state_versions.data"] == 0 {
				t.Errorf("checked %v", opened)
			}
		})
		if after := settingsRows(t, url, dir); after["data_key"] != before["data_key"] {
			t.Error("an interrupted rotation changed the data key")
		}
		checkData(t, url, dir, mustKey(t, k1))
	})
}

// The rotation refuses while a server runs on the database.
func TestRotateDataKeyRefusedWhileServing(t *testing.T) {
	t.Run("postgres", func(t *testing.T) {
		url := dbtest.PostgresURL(t)
		dir := t.TempDir()
		k1 := secrets.GenerateKey()
		s, err := start(t, encConfig(dir, url, k1))
		if err != nil {
			t.Fatal(err)
		}
		before := settingsRows(t, url, dir)
		withDB(t, url, dir, func(d *db.DB) {
			_, _, err := server.RotateDataKey(context.Background(), d, mustKey(t, k1))
			if err == nil || !strings.Contains(err.Error(), "stop every server first") {
				t.Errorf("rotate while a server runs = %v", err)
			}
		})
		if after := settingsRows(t, url, dir); after["data_key"] != before["data_key"] {
			t.Error("a refused rotation changed the data key")
		}
		s.stop(t)
		withDB(t, url, dir, func(d *db.DB) { // stopped: it left
			if _, _, err := server.RotateDataKey(context.Background(), d, mustKey(t, k1)); err != nil {
				t.Errorf("rotate after the server stopped: %v", err)
			}
		})
	})
}

// Every BLOB column and every column named *_sealed is in
// server.SealedColumns, or said here not to hold data sealed with the data
// key: a new one must be classified.
func TestSealedColumnsCoverTheSchema(t *testing.T) {
	notSealed := map[string]string{
		"run_logs.data": "run logs: masked, not encrypted (docs/operations.md)",
	}
	d := dbtest.SQLite(t)
	registered := map[string]bool{}
	for _, c := range server.SealedColumns() {
		registered[c.Name()] = true
	}
	rows, err := d.Query(context.Background(), `SELECT m.name, p.name, p.type FROM sqlite_master m JOIN pragma_table_info(m.name) p
		WHERE m.type = 'table' AND m.name NOT LIKE 'sqlite_%'`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	seen := 0
	for rows.Next() {
		var tbl, col, typ string
		if err := rows.Scan(&tbl, &col, &typ); err != nil {
			t.Fatal(err)
		}
		name := tbl + "." + col
		if !strings.EqualFold(typ, "BLOB") && !strings.HasSuffix(col, "_sealed") {
			continue
		}
		seen++
		if !registered[name] && notSealed[name] == "" {
			t.Errorf("column %s (%s) may hold sealed values: add it to its package's SealedColumns (or to notSealed here, saying why)", name, typ)
		}
	}
	if seen == 0 {
		t.Fatal("no column checked")
	}
}
