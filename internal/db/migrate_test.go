package db_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"

	"github.com/gantry-iac/gantry/internal/db"
	"github.com/gantry-iac/gantry/internal/db/dbtest"
)

// TestOpenRefusesNewerSchema checks that a binary refuses a database that a
// newer release migrated (rolling back the binary, or an old replica
// restarting after a new one migrated), on both databases.
func TestOpenRefusesNewerSchema(t *testing.T) {
	tests := []struct {
		name string
		open func(t *testing.T) (url, dataDir string)
	}{
		{"sqlite", func(t *testing.T) (string, string) { return "", t.TempDir() }},
		{"postgres", func(t *testing.T) (string, string) { return dbtest.PostgresURL(t), "" }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			url, dataDir := tt.open(t)
			d, err := db.Open(ctx, url, dataDir, nil)
			if err != nil {
				t.Fatal(err)
			}
			var known int64
			if err := d.QueryRow(ctx, "SELECT MAX(version_id) FROM goose_db_version").Scan(&known); err != nil {
				t.Fatal(err)
			}
			// What a newer release's migration leaves behind.
			newer := known + 1
			if _, err := d.Exec(ctx, "INSERT INTO goose_db_version (version_id, is_applied) VALUES ($1, $2)", newer, true); err != nil {
				t.Fatal(err)
			}
			if err := d.Close(); err != nil {
				t.Fatal(err)
			}

			d, err = db.Open(ctx, url, dataDir, nil)
			if err == nil {
				d.Close()
				t.Fatal("Open succeeded on a database migrated by a newer release")
			}
			if !errors.Is(err, db.ErrSchemaTooNew) {
				t.Errorf("error %v: want ErrSchemaTooNew", err)
			}
			if want := fmt.Sprintf("%d > %d", newer, known); !strings.Contains(err.Error(), want) {
				t.Errorf("error %q: want it to name the versions (%s)", err, want)
			}
		})
	}
}

// TestOpenLogsSchemaVersion checks that Open tells the schema version it
// left, in its log line and to the server (which logs it at start), on
// both databases: what an operator checks after an upgrade.
func TestOpenLogsSchemaVersion(t *testing.T) {
	for _, tt := range []struct {
		name string
		open func(t *testing.T) (url, dataDir string)
	}{
		{"sqlite", func(t *testing.T) (string, string) { return "", t.TempDir() }},
		{"postgres", func(t *testing.T) (string, string) { return dbtest.PostgresURL(t), "" }},
	} {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			url, dataDir := tt.open(t)
			var logs bytes.Buffer
			d, err := db.Open(ctx, url, dataDir, slog.New(slog.NewTextHandler(&logs, nil)))
			if err != nil {
				t.Fatal(err)
			}
			defer d.Close()
			var want int64
			if err := d.QueryRow(ctx, "SELECT MAX(version_id) FROM goose_db_version").Scan(&want); err != nil {
				t.Fatal(err)
			}
			if got := d.SchemaVersion(); got != want || want == 0 {
				t.Errorf("SchemaVersion() = %d, want %d", got, want)
			}
			if line := fmt.Sprintf("schema_version=%d", want); !strings.Contains(logs.String(), "database opened") || !strings.Contains(logs.String(), line) {
				t.Errorf("the log does not say %s:\n%s", line, logs.String())
			}
		})
	}
}
