package db_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/gantry-iac/gantry/internal/db"
	"github.com/gantry-iac/gantry/internal/db/dbtest"
)

func putSetting(ctx context.Context, d *db.DB, name string) error {
	_, err := d.Exec(ctx, "INSERT INTO settings (name, value) VALUES ($1, $2)", name, "v")
	return err
}

func countSettings(t *testing.T, ctx context.Context, d *db.DB) int {
	t.Helper()
	var n int
	if err := d.QueryRow(ctx, "SELECT COUNT(*) FROM settings").Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func TestTx(t *testing.T) {
	errBoom := errors.New("boom")
	tests := []struct {
		name    string
		fn      func(ctx context.Context, d *db.DB) error
		wantErr error
		want    int // settings rows afterwards
	}{
		{"commit", func(ctx context.Context, d *db.DB) error {
			return putSetting(ctx, d, "a")
		}, nil, 1},
		{"rollback on error", func(ctx context.Context, d *db.DB) error {
			if err := putSetting(ctx, d, "a"); err != nil {
				return err
			}
			return errBoom
		}, errBoom, 0},
		{"nested commits with outer", func(ctx context.Context, d *db.DB) error {
			if err := putSetting(ctx, d, "a"); err != nil {
				return err
			}
			return d.Tx(ctx, func(ctx context.Context) error { return putSetting(ctx, d, "b") })
		}, nil, 2},
		{"nested error rolls back outer", func(ctx context.Context, d *db.DB) error {
			if err := putSetting(ctx, d, "a"); err != nil {
				return err
			}
			return d.Tx(ctx, func(ctx context.Context) error {
				if err := putSetting(ctx, d, "b"); err != nil {
					return err
				}
				return errBoom
			})
		}, errBoom, 0},
		{"reads see own writes", func(ctx context.Context, d *db.DB) error {
			if err := putSetting(ctx, d, "a"); err != nil {
				return err
			}
			rows, err := d.Query(ctx, "SELECT name FROM settings")
			if err != nil {
				return err
			}
			n := 0
			for rows.Next() {
				n++
			}
			if err := errors.Join(rows.Err(), rows.Close()); err != nil {
				return err
			}
			var m int
			if err := d.QueryRow(ctx, "SELECT COUNT(*) FROM settings").Scan(&m); err != nil {
				return err
			}
			if n != 1 || m != 1 {
				return fmt.Errorf("in transaction: Query saw %d rows, QueryRow counted %d; want 1", n, m)
			}
			return nil
		}, nil, 1},
	}
	dbtest.Each(t, func(t *testing.T, d *db.DB) {
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				ctx := context.Background()
				if _, err := d.Exec(ctx, "DELETE FROM settings"); err != nil {
					t.Fatal(err)
				}
				err := d.Tx(ctx, func(ctx context.Context) error {
					if !d.InTx(ctx) {
						t.Error("InTx is false inside Tx")
					}
					return tt.fn(ctx, d)
				})
				if !errors.Is(err, tt.wantErr) {
					t.Errorf("Tx = %v, want %v", err, tt.wantErr)
				}
				if got := countSettings(t, ctx, d); got != tt.want {
					t.Errorf("%d rows after Tx, want %d", got, tt.want)
				}
			})
		}
	})
}

func TestTxPanicRollsBack(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, d *db.DB) {
		ctx := context.Background()
		func() {
			defer func() {
				if p := recover(); p != "boom" {
					t.Errorf("recovered %v, want the panic to go on", p)
				}
			}()
			_ = d.Tx(ctx, func(ctx context.Context) error {
				if err := putSetting(ctx, d, "a"); err != nil {
					t.Fatal(err)
				}
				panic("boom")
			})
		}()
		if got := countSettings(t, ctx, d); got != 0 {
			t.Errorf("%d rows after panic, want 0", got)
		}
		// The connection was given back: another transaction works.
		if err := d.Tx(ctx, func(ctx context.Context) error { return putSetting(ctx, d, "b") }); err != nil {
			t.Fatalf("Tx after panic: %v", err)
		}
	})
}

func TestTxRetries(t *testing.T) {
	serialization := &pgconn.PgError{Code: "40001"}
	deadlock := &pgconn.PgError{Code: "40P01"}
	tests := []struct {
		name     string
		failures []error // returned by attempts 1..n, then nil
		want     map[db.Dialect]int
		wantErr  bool
	}{
		{"serialization failure", []error{serialization}, map[db.Dialect]int{db.Postgres: 2, db.SQLite: 1}, false},
		{"deadlock twice", []error{deadlock, fmt.Errorf("wrapped: %w", deadlock)}, map[db.Dialect]int{db.Postgres: 3, db.SQLite: 1}, false},
		{"bounded", []error{serialization, serialization, serialization, serialization, serialization, serialization}, map[db.Dialect]int{db.Postgres: 5, db.SQLite: 1}, true},
		{"other errors not retried", []error{&pgconn.PgError{Code: "23505"}}, map[db.Dialect]int{db.Postgres: 1, db.SQLite: 1}, true},
	}
	dbtest.Each(t, func(t *testing.T, d *db.DB) {
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				ctx := context.Background()
				if _, err := d.Exec(ctx, "DELETE FROM settings"); err != nil {
					t.Fatal(err)
				}
				attempts := 0
				err := d.Tx(ctx, func(ctx context.Context) error {
					attempts++
					if err := putSetting(ctx, d, "a"); err != nil {
						return err // a failed attempt was not rolled back
					}
					if attempts <= len(tt.failures) {
						return tt.failures[attempts-1]
					}
					return nil
				})
				wantErr := tt.wantErr || d.Dialect == db.SQLite
				if (err != nil) != wantErr {
					t.Errorf("Tx = %v, want error: %v", err, wantErr)
				}
				if attempts != tt.want[d.Dialect] {
					t.Errorf("%d attempts, want %d", attempts, tt.want[d.Dialect])
				}
				if want, got := map[bool]int{true: 0, false: 1}[wantErr], countSettings(t, ctx, d); got != want {
					t.Errorf("%d rows, want %d", got, want)
				}
			})
		}
	})
}

// TestConcurrentWriters runs many transactions and statements from many
// goroutines at once: none may fail with SQLITE_BUSY or otherwise.
func TestConcurrentWriters(t *testing.T) {
	const goroutines, perGoroutine = 8, 50
	dbtest.Each(t, func(t *testing.T, d *db.DB) {
		ctx := context.Background()
		var wg sync.WaitGroup
		errs := make(chan error, goroutines*perGoroutine*2)
		for g := range goroutines {
			wg.Go(func() {
				for i := range perGoroutine {
					err := d.Tx(ctx, func(ctx context.Context) error {
						var n int
						if err := d.QueryRow(ctx, "SELECT COUNT(*) FROM settings").Scan(&n); err != nil {
							return err
						}
						return putSetting(ctx, d, fmt.Sprintf("tx-%d-%d", g, i))
					})
					if err != nil {
						errs <- err
					}
					// Outside a transaction: a write and a read.
					if _, err := d.Exec(ctx, "INSERT INTO settings (name, value) VALUES ($1, $2) ON CONFLICT (name) DO UPDATE SET value = $2",
						fmt.Sprintf("exec-%d", g), fmt.Sprint(i)); err != nil {
						errs <- err
					}
					var n int
					if err := d.QueryRow(ctx, "SELECT COUNT(*) FROM settings WHERE name LIKE 'tx-%'").Scan(&n); err != nil {
						errs <- err
					}
				}
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Error(err)
		}
		if got, want := countSettings(t, ctx, d), goroutines*perGoroutine+goroutines; got != want {
			t.Errorf("%d rows, want %d", got, want)
		}
	})
}

// TestIterateWhileWriting reads rows outside a transaction while writing:
// on SQLite the reads and the write use different connections, so this must
// not deadlock.
func TestIterateWhileWriting(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, d *db.DB) {
		ctx := context.Background()
		for _, name := range []string{"a", "b", "c"} {
			if err := putSetting(ctx, d, name); err != nil {
				t.Fatal(err)
			}
		}
		rows, err := d.Query(ctx, "SELECT name FROM settings ORDER BY name")
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		for rows.Next() {
			var name string
			if err := rows.Scan(&name); err != nil {
				t.Fatal(err)
			}
			if _, err := d.Exec(ctx, "UPDATE settings SET value = $1 WHERE name = $2", "seen", name); err != nil {
				t.Fatal(err)
			}
		}
		if err := rows.Err(); err != nil {
			t.Fatal(err)
		}
	})
}

func TestClaimWithSkipLocked(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, d *db.DB) {
		ctx := context.Background()
		seedRun(t, d, "run-1")
		var claimed string
		err := d.Tx(ctx, func(ctx context.Context) error {
			err := d.QueryRow(ctx, "SELECT id FROM runs WHERE state = $1 ORDER BY id LIMIT 1"+d.ForUpdateSkipLocked(),
				"queued").Scan(&claimed)
			if err != nil {
				return err
			}
			_, err = d.Exec(ctx, "UPDATE runs SET state = $1, worker_id = $2 WHERE id = $3", "preparing", "wrk-1", claimed)
			return err
		})
		if err != nil || claimed != "run-1" {
			t.Errorf("claimed %q, err %v", claimed, err)
		}
	})
}

// warnings counts the records at WARN and above.
type warnings struct {
	mu sync.Mutex
	n  int
}

func (w *warnings) Enabled(context.Context, slog.Level) bool { return true }
func (w *warnings) Handle(_ context.Context, r slog.Record) error {
	if r.Level >= slog.LevelWarn {
		w.mu.Lock()
		w.n++
		w.mu.Unlock()
	}
	return nil
}
func (w *warnings) WithAttrs([]slog.Attr) slog.Handler { return w }
func (w *warnings) WithGroup(string) slog.Handler      { return w }

// A transaction whose context ends (a client that went away) is rolled
// back, nothing of it is kept, and no warning is logged for the rollback
// the driver could not send on the ended context.
func TestTxContextEndedRollsBackQuietly(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, d *db.DB) {
		w := &warnings{}
		db.SetLog(d, slog.New(w))
		ctx, cancel := context.WithCancel(context.Background())
		err := d.Tx(ctx, func(ctx context.Context) error {
			if err := putSetting(ctx, d, "a"); err != nil {
				return err
			}
			cancel()
			return ctx.Err()
		})
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("Tx = %v, want context.Canceled", err)
		}
		if n := countSettings(t, context.Background(), d); n != 0 {
			t.Errorf("%d settings kept from the rolled-back transaction", n)
		}
		if w.n != 0 {
			t.Errorf("%d warnings logged for the rollback of an ended context", w.n)
		}
	})
}
