package db_test

import (
	"context"
	"database/sql"
	"errors"
	"slices"
	"testing"

	"github.com/gantry-iac/gantry/internal/db"
	"github.com/gantry-iac/gantry/internal/db/dbtest"
)

// Both row types are scanners.
var (
	_ db.Scanner = (*sql.Row)(nil)
	_ db.Scanner = (*sql.Rows)(nil)
)

func scanName(s db.Scanner) (string, error) {
	var name string
	err := s.Scan(&name)
	return name, err
}

func TestCollect(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, d *db.DB) {
		ctx := context.Background()
		const q = "SELECT name FROM settings WHERE name > $1 ORDER BY name"

		got, err := db.Collect(ctx, d, scanName, q, "")
		if err != nil || got == nil || len(got) != 0 {
			t.Fatalf("no row: got %#v, %v; want an empty, non-nil slice", got, err)
		}

		for _, name := range []string{"c", "a", "b"} {
			if err := putSetting(ctx, d, name); err != nil {
				t.Fatal(err)
			}
		}
		got, err = db.Collect(ctx, d, scanName, q, "a")
		if err != nil || !slices.Equal(got, []string{"b", "c"}) {
			t.Errorf("got %q, %v; want [b c]", got, err)
		}

		if _, err := db.Collect(ctx, d, scanName, "SELECT no_such_column FROM settings"); err == nil {
			t.Error("bad query: no error")
		}

		// In a transaction: Collect reads the transaction's own writes, a
		// scan error comes back as it is, and the rows are closed, so that
		// the next statement of the transaction can run (on PostgreSQL it
		// could not while they were open).
		errBoom := errors.New("boom")
		err = d.Tx(ctx, func(ctx context.Context) error {
			if err := putSetting(ctx, d, "d"); err != nil {
				return err
			}
			got, err := db.Collect(ctx, d, scanName, q, "")
			if err != nil || !slices.Equal(got, []string{"a", "b", "c", "d"}) {
				t.Errorf("in transaction: got %q, %v; want [a b c d]", got, err)
			}
			calls := 0
			got, err = db.Collect(ctx, d, func(s db.Scanner) (string, error) {
				calls++
				return "", errBoom
			}, q, "")
			if got != nil || !errors.Is(err, errBoom) || calls != 1 {
				t.Errorf("scan error: got %q, %v after %d calls; want nil, %v after 1", got, err, calls, errBoom)
			}
			return putSetting(ctx, d, "e")
		})
		if err != nil {
			t.Fatalf("statement after a failed Collect in the transaction: %v", err)
		}
		if n := countSettings(t, ctx, d); n != 5 {
			t.Errorf("%d settings, want 5", n)
		}
	})
}
