package db_test

import (
	"bytes"
	"context"
	"database/sql"
	"math"
	"testing"
	"time"

	"github.com/gantry-iac/gantry/internal/db"
	"github.com/gantry-iac/gantry/internal/db/dbtest"
)

// seedRun inserts a space, a stack and a queued run with the given id.
func seedRun(t *testing.T, d *db.DB, runID string) {
	t.Helper()
	ctx := context.Background()
	stmts := []struct {
		query string
		args  []any
	}{
		{"INSERT INTO spaces (id, name, created_at, updated_at) VALUES ($1, $2, $3, $3)",
			[]any{"spc-1", "root", int64(1)}},
		{"INSERT INTO stacks (id, name, space_id, repository, branch, tool, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $7)",
			[]any{"stk-1", "demo", "spc-1", "/repo", "main", "tofu", int64(1)}},
		{"INSERT INTO runs (id, stack_id, space_id, type, state, blocking, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $7)",
			[]any{runID, "stk-1", "spc-1", "tracked", "queued", true, int64(1)}},
	}
	for _, s := range stmts {
		if _, err := d.Exec(ctx, s.query, s.args...); err != nil {
			t.Fatalf("%s: %v", s.query, err)
		}
	}
}

func TestBoolRoundTrip(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, d *db.DB) {
		ctx := context.Background()
		for i, v := range []bool{true, false} {
			_, err := d.Exec(ctx, "INSERT INTO spaces (id, name, inherit, created_at, updated_at) VALUES ($1, $2, $3, $4, $4)",
				[]string{"spc-t", "spc-f"}[i], "s", v, int64(1))
			if err != nil {
				t.Fatal(err)
			}
		}
		for _, v := range []bool{true, false} {
			var got bool
			var null sql.NullBool
			var n int
			err := d.QueryRow(ctx, "SELECT inherit, inherit, (SELECT COUNT(*) FROM spaces WHERE inherit = $1) FROM spaces WHERE inherit = $1", v).
				Scan(&got, &null, &n)
			if err != nil {
				t.Fatalf("select inherit = %v: %v", v, err)
			}
			if got != v || !null.Valid || null.Bool != v || n != 1 {
				t.Errorf("inherit = %v: scanned %v, %+v, count %d", v, got, null, n)
			}
		}
		// Literals and bare boolean columns work in shared SQL too.
		var id string
		if err := d.QueryRow(ctx, "SELECT id FROM spaces WHERE inherit AND inherit = TRUE").Scan(&id); err != nil || id != "spc-t" {
			t.Errorf("WHERE inherit: %q, %v", id, err)
		}
		// Defaults come back as bool as well.
		var managed bool
		seedRun(t, d, "run-1")
		if err := d.QueryRow(ctx, "SELECT managed_state FROM stacks WHERE id = $1", "stk-1").Scan(&managed); err != nil || !managed {
			t.Errorf("managed_state default: %v, %v", managed, err)
		}
	})
}

func TestBytesRoundTrip(t *testing.T) {
	big := bytes.Repeat([]byte{0, 1, 2, 0xff, 'x'}, 200_000) // 1 MB
	tests := []struct {
		name string
		data []byte
	}{
		{"empty", []byte{}},
		{"nil is written as empty", nil},
		{"binary", []byte{0, 0xff, 0xfe, '\'', '\\', 0}},
		{"text", []byte("hello\nworld")},
		{"large", big},
	}
	dbtest.Each(t, func(t *testing.T, d *db.DB) {
		ctx := context.Background()
		seedRun(t, d, "run-1")
		for i, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				if _, err := d.Exec(ctx, "INSERT INTO run_logs (run_id, byte_offset, data) VALUES ($1, $2, $3)", "run-1", int64(i), tt.data); err != nil {
					t.Fatal(err)
				}
				var got []byte
				if err := d.QueryRow(ctx, "SELECT data FROM run_logs WHERE run_id = $1 AND byte_offset = $2", "run-1", int64(i)).Scan(&got); err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(got, tt.data) {
					t.Errorf("got %d bytes, want %d", len(got), len(tt.data))
				}
				// Whatever was scanned can be written back.
				if _, err := d.Exec(ctx, "UPDATE run_logs SET data = $1 WHERE run_id = $2 AND byte_offset = $3", got, "run-1", int64(i)); err != nil {
					t.Errorf("writing back: %v", err)
				}
			})
		}
		// An untyped nil is NULL.
		_, err := d.Exec(ctx, "INSERT INTO run_logs (run_id, byte_offset, data) VALUES ($1, $2, $3)", "run-1", int64(99), nil)
		if err == nil {
			t.Error("NULL into a NOT NULL column succeeded")
		}
	})
}

func TestInt64RoundTrip(t *testing.T) {
	now := time.Now()
	values := []int64{0, 1, -1, math.MaxInt64, math.MinInt64, db.Nanos(now)}
	dbtest.Each(t, func(t *testing.T, d *db.DB) {
		ctx := context.Background()
		for i, v := range values {
			id := "tok-" + string(rune('a'+i))
			if _, err := d.Exec(ctx, "INSERT INTO api_tokens (id, name, token_hash, created_at, last_used_at) VALUES ($1, $1, $1, $2, $2)", id, v); err != nil {
				t.Fatal(err)
			}
			var got int64
			if err := d.QueryRow(ctx, "SELECT created_at FROM api_tokens WHERE id = $1 AND last_used_at = $2", id, v).Scan(&got); err != nil {
				t.Fatalf("%d: %v", v, err)
			}
			if got != v {
				t.Errorf("got %d, want %d", got, v)
			}
		}
		var n int64
		if err := d.QueryRow(ctx, "SELECT created_at FROM api_tokens WHERE created_at > $1 AND created_at < $2", int64(1), math.MaxInt64).Scan(&n); err != nil || !db.FromNanos(n).Equal(now) {
			t.Errorf("range query: %d, %v", n, err)
		}
	})
}

func TestNanos(t *testing.T) {
	now := time.Now()
	tests := []struct {
		name string
		t    time.Time
		n    int64
	}{
		{"zero", time.Time{}, 0},
		{"epoch+1", time.Unix(0, 1).UTC(), 1},
		{"now", now, now.UnixNano()},
	}
	for _, tt := range tests {
		if got := db.Nanos(tt.t); got != tt.n {
			t.Errorf("%s: Nanos = %d, want %d", tt.name, got, tt.n)
		}
		if got := db.FromNanos(tt.n); !got.Equal(tt.t) || (got.Location() != time.UTC && !got.IsZero()) {
			t.Errorf("%s: FromNanos = %v, want %v in UTC", tt.name, got, tt.t)
		}
	}
}

func TestInList(t *testing.T) {
	q, args := db.InList([]string{"a", "b", "c"}, 1)
	if q != "$2, $3, $4" || len(args) != 3 || args[0] != "a" || args[2] != "c" {
		t.Errorf("InList = %q, %v", q, args)
	}
	if q, args := db.InList(nil, 0); q != "" || len(args) != 0 {
		t.Errorf("InList(nil) = %q, %v", q, args)
	}
}
