package db_test

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gantry-iac/gantry/internal/db"
	"github.com/gantry-iac/gantry/internal/db/dbtest"
)

// WithLock excludes the holders of one key, across two handles of one
// PostgreSQL database (two replicas) as within one process, leaves other
// keys and other writers free, and gives up waiting with its context.
func TestWithLock(t *testing.T) {
	check := func(t *testing.T, a, b *db.DB) {
		ctx := context.Background()
		var inside, most atomic.Int32
		var wg sync.WaitGroup
		for i := range 6 {
			d := a
			if i%2 == 1 {
				d = b
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				err := d.WithLock(ctx, 42, func(ctx context.Context) error {
					n := inside.Add(1)
					if n > most.Load() {
						most.Store(n)
					}
					time.Sleep(20 * time.Millisecond)
					inside.Add(-1)
					return nil
				})
				if err != nil {
					t.Error(err)
				}
			}()
		}
		wg.Wait()
		if most.Load() != 1 {
			t.Fatalf("%d holders of one lock at once", most.Load())
		}

		// While one holds key 42: another key is free, a write in a
		// transaction goes through, and a waiter gives up with its context.
		held, release := make(chan struct{}), make(chan struct{})
		done := make(chan error, 1)
		go func() {
			done <- a.WithLock(ctx, 42, func(ctx context.Context) error {
				close(held)
				<-release
				return errors.New("fn's error")
			})
		}()
		<-held
		if err := b.WithLock(ctx, 43, func(context.Context) error { return nil }); err != nil {
			t.Fatalf("another key: %v", err)
		}
		if err := b.Tx(ctx, func(ctx context.Context) error {
			_, err := b.Exec(ctx, `INSERT INTO settings (name, value) VALUES ('lock-test', 'x')`)
			return err
		}); err != nil {
			t.Fatalf("a write while the lock is held: %v", err)
		}
		short, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
		ran := false
		err := b.WithLock(short, 42, func(context.Context) error { ran = true; return nil })
		cancel()
		if err == nil || ran {
			t.Fatalf("waiting for a held lock = %v (ran: %v)", err, ran)
		}
		close(release)
		if err := <-done; err == nil || err.Error() != "fn's error" {
			t.Fatalf("WithLock returned %v, want fn's error", err)
		}
		// Released: it can be taken again, also from the other handle.
		if err := b.WithLock(ctx, 42, func(context.Context) error { return nil }); err != nil {
			t.Fatal(err)
		}
		// Never inside a transaction.
		if err := a.Tx(ctx, func(ctx context.Context) error {
			return a.WithLock(ctx, 44, func(context.Context) error { return nil })
		}); err == nil {
			t.Fatal("WithLock ran inside a transaction")
		}
	}
	t.Run("sqlite", func(t *testing.T) {
		d := dbtest.SQLite(t)
		check(t, d, d)
	})
	t.Run("postgres", func(t *testing.T) {
		url := dbtest.PostgresURL(t)
		check(t, dbtest.Open(t, url), dbtest.Open(t, url))
	})
}
