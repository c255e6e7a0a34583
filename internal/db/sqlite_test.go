package db_test

import (
	"bytes"
	"context"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/gantry-iac/gantry/internal/db"
)

// The SQLite files hold the audit trail, logs and variables: whatever the
// umask, they are created readable by their owner only, and files that
// others can read are tightened at the next start, with a warning.
func TestSQLiteFilesPrivate(t *testing.T) {
	defer syscall.Umask(syscall.Umask(0o022)) // what most systems have
	ctx := context.Background()
	dir := t.TempDir()
	if err := os.Chmod(dir, 0o755); err != nil { // a pre-existing data directory
		t.Fatal(err)
	}
	d, err := db.Open(ctx, "", dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := d.Exec(ctx, "INSERT INTO settings (name, value) VALUES ($1, $2)", "k", "v"); err != nil {
		t.Fatal(err)
	}
	files := []string{"gantry.db", "gantry.db-wal", "gantry.db-shm"}
	wantModes(t, dir, files, 0o600)
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}

	// A database made readable by others (created by an older release, or
	// copied): tightened at the next start.
	if err := os.Chmod(filepath.Join(dir, "gantry.db"), 0o644); err != nil {
		t.Fatal(err)
	}
	var log bytes.Buffer
	d, err = db.Open(ctx, "", dir, slog.New(slog.NewTextHandler(&log, nil)))
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if _, err := d.Exec(ctx, "INSERT INTO settings (name, value) VALUES ($1, $2)", "k2", "v"); err != nil {
		t.Fatal(err)
	}
	wantModes(t, dir, files, 0o600)
	if !strings.Contains(log.String(), "readable by other users") || !strings.Contains(log.String(), "was=-rw-r--r--") {
		t.Errorf("no warning about the tightened file:\n%s", log.String())
	}
}

func wantModes(t *testing.T, dir string, files []string, want fs.FileMode) {
	t.Helper()
	for _, name := range files {
		fi, err := os.Stat(filepath.Join(dir, name))
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		if got := fi.Mode().Perm(); got != want {
			t.Errorf("%s has mode %v, want %v", name, got, want)
		}
	}
}
