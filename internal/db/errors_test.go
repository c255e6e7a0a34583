package db_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/gantry-iac/gantry/internal/db"
	"github.com/gantry-iac/gantry/internal/db/dbtest"
	"github.com/gantry-iac/gantry/internal/errs"
)

func TestConstraintErrors(t *testing.T) {
	tests := []struct {
		name       string
		query      string
		args       []any
		unique, fk bool
	}{
		{"duplicate primary key", "INSERT INTO spaces (id, name, created_at, updated_at) VALUES ($1, $2, 1, 1)",
			[]any{"spc-1", "again"}, true, false},
		{"duplicate unique column", "INSERT INTO api_tokens (id, name, token_hash, created_at) VALUES ($1, $2, $3, 1)",
			[]any{"tok-2", "second", "hash-1"}, true, false},
		{"missing parent", "INSERT INTO stacks (id, name, space_id, repository, branch, tool, created_at, updated_at) VALUES ($1, $2, $3, '', '', '', 1, 1)",
			[]any{"stk-1", "s", "spc-missing"}, false, true},
		{"not null", "INSERT INTO settings (name, value) VALUES ($1, NULL)", []any{"n"}, false, false},
	}
	dbtest.Each(t, func(t *testing.T, d *db.DB) {
		ctx := context.Background()
		for _, q := range []string{
			"INSERT INTO spaces (id, name, created_at, updated_at) VALUES ('spc-1', 'root', 1, 1)",
			"INSERT INTO api_tokens (id, name, token_hash, created_at) VALUES ('tok-1', 'first', 'hash-1', 1)",
		} {
			if _, err := d.Exec(ctx, q); err != nil {
				t.Fatal(err)
			}
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				_, err := d.Exec(ctx, tt.query, tt.args...)
				if err == nil {
					t.Fatal("statement succeeded")
				}
				// Outside a transaction as from Tx: a conflict, not an
				// internal error (a race with another request).
				if got, want := errs.KindOf(err), map[bool]errs.Kind{true: errs.Conflict, false: errs.Internal}[tt.unique || tt.fk]; got != want {
					t.Errorf("kind of %v = %s, want %s", err, got, want)
				}
				err = fmt.Errorf("wrapped: %w", err)
				if got := db.IsUniqueViolation(err); got != tt.unique {
					t.Errorf("IsUniqueViolation(%v) = %v, want %v", err, got, tt.unique)
				}
				if got := db.IsForeignKeyViolation(err); got != tt.fk {
					t.Errorf("IsForeignKeyViolation(%v) = %v, want %v", err, got, tt.fk)
				}
			})
		}
		// Through Tx the cause is still seen, as a conflict.
		err := d.Tx(ctx, func(ctx context.Context) error {
			_, err := d.Exec(ctx, tests[0].query, tests[0].args...)
			return err
		})
		if !db.IsUniqueViolation(err) || !errs.Is(err, errs.Conflict) {
			t.Errorf("Tx error %v: want a unique violation, as a conflict", err)
		}
		// An error with a kind of its own passes unchanged.
		mine := errs.E(errs.NotFound, "mine")
		if err := d.Tx(ctx, func(ctx context.Context) error { return mine }); err != mine {
			t.Errorf("Tx returned %v, want fn's error", err)
		}
	})
	for _, err := range []error{nil, errors.New("UNIQUE constraint failed")} {
		if db.IsUniqueViolation(err) || db.IsForeignKeyViolation(err) {
			t.Errorf("%v classified as a constraint violation", err)
		}
	}
}

// A database that is down, refuses connections or has a full disk gives
// errors Unavailable names (the edges answer them 503); errors of the
// query itself do not.
func TestUnavailable(t *testing.T) {
	ctx := context.Background()
	t.Run("postgres outage", func(t *testing.T) {
		url := dbtest.PostgresURL(t)
		d := dbtest.Open(t, url)
		if _, err := d.Exec(ctx, "SELECT nope FROM settings"); err == nil || db.Unavailable(err) != "" {
			t.Errorf("a bad query: %v, Unavailable %q; want an error that is not unavailability", err, db.Unavailable(err))
		}
		end := dbtest.Outage(t, url)
		for _, q := range []string{"SELECT COUNT(*) FROM settings", "SELECT COUNT(*) FROM runs"} {
			var n int
			err := d.QueryRow(ctx, q).Scan(&n)
			if err == nil || !strings.HasPrefix(db.Unavailable(err), "the database is unavailable: ") {
				t.Errorf("%s during an outage: %v, Unavailable %q", q, err, db.Unavailable(err))
			}
			if _, err := d.Exec(ctx, "INSERT INTO settings (name, value) VALUES ('x', 'y')"); err == nil || db.Unavailable(err) == "" {
				t.Errorf("a write during an outage: %v, Unavailable %q", err, db.Unavailable(err))
			}
		}
		end()
		if err := d.Ping(ctx); err != nil {
			t.Errorf("after the outage: %v", err)
		}
	})
	t.Run("sqlite disk full", func(t *testing.T) {
		d := dbtest.SQLite(t)
		// A database that may not grow stands for a full disk: SQLite
		// answers both with SQLITE_FULL.
		var pages int
		if err := d.QueryRow(ctx, "PRAGMA page_count").Scan(&pages); err != nil {
			t.Fatal(err)
		}
		if _, err := d.Exec(ctx, fmt.Sprintf("PRAGMA max_page_count = %d", pages)); err != nil {
			t.Fatal(err)
		}
		var err error
		for i := 0; i < 1000 && err == nil; i++ {
			_, err = d.Exec(ctx, "INSERT INTO settings (name, value) VALUES ($1, $2)", fmt.Sprintf("k%d", i), strings.Repeat("x", 4000))
		}
		if err == nil || db.Unavailable(err) != "the disk holding the database is full" || !db.IsDiskFull(err) {
			t.Errorf("an insert past the database's size: %v, Unavailable %q", err, db.Unavailable(err))
		}
	})
	for _, tt := range []struct {
		code, want string
	}{
		{"53300", "the database is unavailable: it has too many clients"},
		{"57P01", "the database is unavailable: it is shutting down or starting up"},
		{"57P03", "the database is unavailable: it is shutting down or starting up"},
		{"08006", "the database is unavailable: the connection to it failed"},
		{"53100", "the disk holding the database is full"},
		{"40001", ""}, {"23505", ""}, {"55P03", ""},
	} {
		if got := db.Unavailable(fmt.Errorf("x: %w", &pgconn.PgError{Code: tt.code})); got != tt.want {
			t.Errorf("SQLSTATE %s: %q, want %q", tt.code, got, tt.want)
		}
	}
}
