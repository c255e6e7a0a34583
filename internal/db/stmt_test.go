package db

import (
	"context"
	"testing"
	"time"
)

// On SQLite a query run often is kept prepared, on the writer and on the
// readers, and gives the same results inside and outside transactions,
// also after the schema changed under the prepared statement.
func TestSQLiteKeepsStatementsPrepared(t *testing.T) {
	ctx := context.Background()
	d, err := Open(ctx, "", t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	const ins = "INSERT INTO settings (name, value) VALUES ($1, $2)"
	const sel = "SELECT value FROM settings WHERE name = $1"
	read := func(name string) string {
		t.Helper()
		var v string
		if err := d.QueryRow(ctx, sel, name).Scan(&v); err != nil {
			t.Fatalf("%s outside a transaction: %v", name, err)
		}
		var w string
		err := d.Tx(ctx, func(ctx context.Context) error { return d.QueryRow(ctx, sel, name).Scan(&w) })
		if err != nil || w != v {
			t.Fatalf("%s in a transaction: %q, %v; outside %q", name, w, err, v)
		}
		return v
	}
	if _, err := d.Exec(ctx, ins, "a", "1"); err != nil {
		t.Fatal(err)
	}
	if got := read("a"); got != "1" {
		t.Fatalf("a = %q", got)
	}
	deadline := time.Now().Add(10 * time.Second)
	for _, text := range []string{ins, sel} {
		q := d.prepare(text)
		for q.prep.stmts[0].Load() == nil || (q.readOnly && q.prep.stmts[1].Load() == nil) {
			if time.Now().After(deadline) {
				t.Fatalf("%q was not prepared", text)
			}
			_, _ = d.Exec(ctx, "SELECT 1") // run something while waiting
			time.Sleep(time.Millisecond)
		}
	}
	// Now through the prepared statements, in and out of transactions.
	err = d.Tx(ctx, func(ctx context.Context) error {
		_, err := d.Exec(ctx, ins, "b", "2")
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := d.Exec(ctx, ins, "c", "3"); err != nil {
		t.Fatal(err)
	}
	if read("b") != "2" || read("c") != "3" {
		t.Fatal("rows written through prepared statements read back wrong")
	}
	// A failing statement leaves the transaction's rollback intact.
	err = d.Tx(ctx, func(ctx context.Context) error {
		if _, err := d.Exec(ctx, ins, "d", "4"); err != nil {
			return err
		}
		_, err := d.Exec(ctx, ins, "d", "5") // duplicate key
		return err
	})
	if err == nil {
		t.Fatal("duplicate insert succeeded")
	}
	var n int
	if err := d.QueryRow(ctx, "SELECT COUNT(*) FROM settings WHERE name = 'd'").Scan(&n); err != nil || n != 0 {
		t.Fatalf("rolled back insert left %d rows (%v)", n, err)
	}
	// The schema changes under the prepared statements: SQLite prepares
	// them again by itself.
	if _, err := d.Exec(ctx, "CREATE TABLE extra (x INTEGER)"); err != nil {
		t.Fatal(err)
	}
	if _, err := d.Exec(ctx, "CREATE INDEX settings_value ON settings (value)"); err != nil {
		t.Fatal(err)
	}
	if read("c") != "3" {
		t.Fatal("read after a schema change is wrong")
	}
}
