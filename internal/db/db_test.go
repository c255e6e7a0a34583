package db_test

import (
	"context"
	"strings"
	"testing"

	"github.com/gantry-iac/gantry/internal/db"
	"github.com/gantry-iac/gantry/internal/db/dbtest"
)

func TestMain(m *testing.M) { dbtest.Main(m) }

func TestOpenMigrates(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, d *db.DB) {
		ctx := context.Background()
		var version int64
		if err := d.QueryRow(ctx, "SELECT MAX(version_id) FROM goose_db_version").Scan(&version); err != nil {
			t.Fatal(err)
		}
		if version < 1 {
			t.Errorf("schema version = %d, want >= 1", version)
		}
		if _, err := d.Exec(ctx, "INSERT INTO settings (name, value) VALUES ($1, $2)", "k", "v"); err != nil {
			t.Fatal(err)
		}
		if err := d.Ping(ctx); err != nil {
			t.Fatal(err)
		}
	})
}

func TestDialect(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, d *db.DB) {
		want := map[string]db.Dialect{"sqlite": db.SQLite, "postgres": db.Postgres}[lastElem(t.Name())]
		if d.Dialect != want {
			t.Errorf("Dialect = %v, want %v", d.Dialect, want)
		}
		clause := map[db.Dialect]string{db.SQLite: "", db.Postgres: " FOR UPDATE SKIP LOCKED"}[d.Dialect]
		if got := d.ForUpdateSkipLocked(); got != clause {
			t.Errorf("ForUpdateSkipLocked() = %q, want %q", got, clause)
		}
	})
}

func TestReopenSQLiteKeepsData(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	d, err := db.Open(ctx, "", dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := d.Exec(ctx, "INSERT INTO settings (name, value) VALUES ($1, $2)", "k", "v"); err != nil {
		t.Fatal(err)
	}
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	d, err = db.Open(ctx, "", dir, nil)
	if err != nil {
		t.Fatalf("reopen: %v", err)
	}
	defer d.Close()
	var v string
	if err := d.QueryRow(ctx, "SELECT value FROM settings WHERE name = $1", "k").Scan(&v); err != nil || v != "v" {
		t.Errorf("after reopen: value %q, err %v; want \"v\"", v, err)
	}
	var mode string
	if err := d.QueryRow(ctx, "PRAGMA journal_mode").Scan(&mode); err != nil || mode != "wal" {
		t.Errorf("journal_mode = %q, err %v; want wal", mode, err)
	}
}

func TestOpenRejects(t *testing.T) {
	tests := []struct{ name, url, dataDir, want string }{
		{"unknown scheme", "mysql://u:secret@h/db", "", `"mysql"`},
		{"no scheme", "u:secret@h/db", "", "unsupported"},
		{"sqlite without data dir", "", "", "data directory"},
		// pgx would take "secret@127.0.0.1" for the host, or "secret@..."
		// for the database, and name it in its error.
		{"unescaped @ in password", "postgres://u:x@secret@127.0.0.1:1/db", "", "percent-encoded"},
		{"unescaped / in password", "postgres://u:1/secret@127.0.0.1:1/db", "", "percent-encoded"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, err := db.Open(context.Background(), tt.url, tt.dataDir, nil)
			if err == nil {
				d.Close()
				t.Fatal("Open succeeded")
			}
			if !strings.Contains(err.Error(), tt.want) || strings.Contains(err.Error(), "secret") {
				t.Errorf("error %q: want it to mention %s and not the password", err, tt.want)
			}
		})
	}
}

func TestPlaceholderInStringLiteral(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, d *db.DB) {
		ctx := context.Background()
		if _, err := d.Exec(ctx, "INSERT INTO settings (name, value) VALUES ($1, '$1')", "lit"); err != nil {
			t.Fatal(err)
		}
		var n int64
		err := d.QueryRow(ctx, "SELECT COUNT(*) FROM settings WHERE value = '$1' AND name = $1", "lit").Scan(&n)
		if err != nil || n != 1 {
			t.Errorf("count = %d, err %v; want 1", n, err)
		}
	})
}

// lastElem returns the last element of a test name.
func lastElem(name string) string {
	return name[strings.LastIndex(name, "/")+1:]
}

// dbtest.Outage cuts one test database off, and only that one, until it
// ends: end-to-end tests use it for a database outage under a server.
func TestOutage(t *testing.T) {
	ctx := context.Background()
	url := dbtest.PostgresURL(t)
	d, other := dbtest.Open(t, url), dbtest.Postgres(t)
	end := dbtest.Outage(t, url)
	if err := d.Ping(ctx); err == nil {
		t.Fatal("Ping during the outage succeeded")
	}
	if err := other.Ping(ctx); err != nil {
		t.Fatalf("another database is cut off too: %v", err)
	}
	end()
	if err := d.Ping(ctx); err != nil {
		t.Fatalf("Ping after the outage: %v", err)
	}
}
