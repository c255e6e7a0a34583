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

// SQLite's own error for a database file it cannot open names no file
// ("unable to open database file (14)"): the files are checked first, and
// the error names the file and the problem.
func TestSQLiteFilesUnusable(t *testing.T) {
	ctx := context.Background()
	newDir := func(t *testing.T) string {
		t.Helper()
		dir := t.TempDir()
		d, err := db.Open(ctx, "", dir, nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := d.Close(); err != nil {
			t.Fatal(err)
		}
		return dir
	}
	for _, name := range []string{"gantry.db-wal", "gantry.db-shm"} {
		t.Run("a directory in place of "+name, func(t *testing.T) {
			dir := newDir(t)
			p := filepath.Join(dir, name)
			os.Remove(p)
			if err := os.Mkdir(p, 0o700); err != nil {
				t.Fatal(err)
			}
			d, err := db.Open(ctx, "", dir, nil)
			if err == nil {
				d.Close()
				t.Fatal("opened")
			}
			if want := p + " is not a regular file but a directory"; !strings.Contains(err.Error(), want) {
				t.Errorf("error %q, want it to say %q", err, want)
			}
		})
	}
	t.Run("files this process may not write", func(t *testing.T) {
		if os.Geteuid() == 0 {
			t.Skip("running as root, whom file permissions do not bind: the directory cases above check the same path")
		}
		for _, name := range []string{"gantry.db", "gantry.db-wal", "gantry.db-shm"} {
			dir := newDir(t)
			p := filepath.Join(dir, name)
			if err := os.WriteFile(p, nil, 0o600); err != nil && !os.IsExist(err) {
				t.Fatal(err)
			}
			if err := os.Chmod(p, 0o400); err != nil {
				t.Fatal(err)
			}
			d, err := db.Open(ctx, "", dir, nil)
			if err == nil {
				d.Close()
				t.Fatalf("%s: opened", name)
			}
			if want := p + " cannot be read and written by this process (owner "; !strings.Contains(err.Error(), want) ||
				!strings.Contains(err.Error(), "permission denied") {
				t.Errorf("%s: error %q, want it to say %q and permission denied", name, err, want)
			}
		}
		dir := newDir(t)
		if err := os.Chmod(dir, 0o500); err != nil {
			t.Fatal(err)
		}
		defer os.Chmod(dir, 0o700)
		d, err := db.Open(ctx, "", dir, nil)
		if err == nil {
			d.Close()
			t.Fatal("a data directory it may not write: opened")
		}
		if want := "the data directory " + dir + " is not writable by this process (owner "; !strings.Contains(err.Error(), want) {
			t.Errorf("a data directory it may not write: error %q, want it to say %q", err, want)
		}
	})
}
