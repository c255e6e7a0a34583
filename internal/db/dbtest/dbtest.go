// Package dbtest runs tests against both of Gantry's databases: SQLite in a
// fresh temporary directory, and PostgreSQL in a fresh database of a
// throwaway cluster that the test binary starts on first use and stops when
// it exits.
//
// A package whose tests use PostgreSQL must stop the cluster by declaring
//
//	func TestMain(m *testing.M) { dbtest.Main(m) }
//
// Set GANTRY_TEST_PG_URL (postgres://user:pass@host:port/db) to use an
// existing server instead; each test then gets a fresh database there, which
// is dropped afterwards. Without that variable and without PostgreSQL
// binaries (initdb, pg_ctl, postgres on PATH or in
// /usr/lib/postgresql/*/bin), PostgreSQL tests are skipped.
package dbtest

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/gantry-iac/gantry/internal/db"
	"github.com/gantry-iac/gantry/internal/errs"
)

// openTimeout bounds opening and migrating one test database.
const openTimeout = time.Minute

// Each runs fn twice, as the subtests "sqlite" and "postgres", each with a
// freshly opened and migrated database that is closed when the subtest
// ends.
func Each(t *testing.T, fn func(t *testing.T, d *db.DB)) {
	t.Helper()
	t.Run("sqlite", func(t *testing.T) { fn(t, SQLite(t)) })
	t.Run("postgres", func(t *testing.T) { fn(t, Postgres(t)) })
}

// SQLite returns a migrated SQLite database in a fresh temporary directory,
// closed when the test ends.
func SQLite(t testing.TB) *db.DB {
	t.Helper()
	return open(t, "", t.TempDir())
}

// Postgres returns a migrated PostgreSQL database, fresh and empty before
// migration, closed and dropped when the test ends. It skips the test if no
// PostgreSQL is available (see the package documentation).
func Postgres(t testing.TB) *db.DB {
	t.Helper()
	return open(t, PostgresURL(t), "")
}

// PostgresURL creates a fresh, empty database (not migrated) and returns its
// URL, for tests that start whole server processes against PostgreSQL. The
// database is dropped when the test ends. It skips the test if no PostgreSQL
// is available (see the package documentation).
func PostgresURL(t testing.TB) string {
	t.Helper()
	return server(t).createDatabase(t)
}

// Open opens (and migrates) the PostgreSQL database at url (from
// PostgresURL), closed when the test ends: two handles of one database
// behave as two replicas.
func Open(t testing.TB, url string) *db.DB {
	t.Helper()
	return open(t, url, "")
}

func open(t testing.TB, url, dataDir string) *db.DB {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), openTimeout)
	defer cancel()
	log := slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}))
	d, err := db.Open(ctx, url, dataDir, log)
	if err != nil {
		t.Fatalf("dbtest: open: %v", err)
	}
	t.Cleanup(func() {
		if err := d.Close(); err != nil {
			t.Errorf("dbtest: close: %v", err)
		}
	})
	return d
}

// Outage cuts the PostgreSQL database at url (from PostgresURL) off from
// its clients, as if its server were down for them: the connections open
// to it are ended and new ones are refused. Other tests' databases are
// not touched. The returned function ends the outage (called at the end
// of the test if not before).
func Outage(t testing.TB, url string) (end func()) {
	t.Helper()
	return server(t).outage(t, url)
}

// EachReplicas runs fn twice, as the subtests "sqlite" and "postgres",
// with two handles of one fresh database: on PostgreSQL two separately
// opened pools, as two server replicas; on SQLite, which has one process,
// the same handle twice. Tests of races give one service to each.
func EachReplicas(t *testing.T, fn func(t *testing.T, a, b *db.DB)) {
	t.Helper()
	t.Run("sqlite", func(t *testing.T) {
		d := SQLite(t)
		fn(t, d, d)
	})
	t.Run("postgres", func(t *testing.T) {
		url := PostgresURL(t)
		fn(t, Open(t, url), Open(t, url))
	})
}

// Race runs the functions at once, each in its own goroutine, released
// together as nearly as can be, and returns their errors in order.
func Race(fns ...func() error) []error {
	out := make([]error, len(fns))
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i, fn := range fns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			out[i] = fn()
		}()
	}
	close(start)
	wg.Wait()
	return out
}

// Lost checks the error of a request that may lose a race: nil (it won)
// or a refusal of the domain's own (errs.NotFound, Conflict or Invalid)
// pass; an internal error (a 500) or a constraint violation that only the
// database caught (db.Tx answers those with a bare conflict, the safety
// net: the domain checked nothing under a lock) is reported.
func Lost(err error) error {
	switch {
	case err == nil:
		return nil
	case db.IsUniqueViolation(err) || db.IsForeignKeyViolation(err):
		return fmt.Errorf("only the database refused: %w", err)
	case errs.Is(err, errs.NotFound) || errs.Is(err, errs.Conflict) || errs.Is(err, errs.Invalid):
		return nil
	}
	return fmt.Errorf("want success or a clean refusal, got (kind %s): %w", errs.KindOf(err), err)
}
