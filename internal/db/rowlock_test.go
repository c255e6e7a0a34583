package db_test

import (
	"context"
	"testing"
	"time"

	"github.com/gantry-iac/gantry/internal/db"
	"github.com/gantry-iac/gantry/internal/db/dbtest"
)

// LockRow and ShareRow report whether the row exists, run only in a
// transaction, and (on PostgreSQL, across two handles as two replicas)
// ShareRow waits for LockRow and then sees the row deleted, while two
// ShareRow holders do not wait for each other.
func TestRowLocks(t *testing.T) {
	dbtest.EachReplicas(t, func(t *testing.T, a, b *db.DB) {
		ctx := context.Background()
		if _, err := a.Exec(ctx, `INSERT INTO spaces (id, name, created_at, updated_at) VALUES ('lk', 'lk', 1, 1)`); err != nil {
			t.Fatal(err)
		}
		if _, err := a.LockRow(ctx, "spaces", "lk"); err == nil {
			t.Error("LockRow outside a transaction succeeded")
		}
		err := a.Tx(ctx, func(ctx context.Context) error {
			for _, lock := range []func(context.Context, string, string) (bool, error){a.LockRow, a.ShareRow} {
				if ok, err := lock(ctx, "spaces", "lk"); err != nil || !ok {
					t.Errorf("locking an existing row = %v, %v", ok, err)
				}
				if ok, err := lock(ctx, "spaces", "nope"); err != nil || ok {
					t.Errorf("locking a missing row = %v, %v", ok, err)
				}
				if _, err := lock(ctx, "spaces; DROP TABLE spaces", "lk"); err == nil {
					t.Error("a table name that is not one was taken")
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if a.Dialect != db.Postgres {
			return // one writer: nothing to wait for
		}

		// Two shared holders at once.
		held, release := make(chan struct{}), make(chan struct{})
		done := make(chan error, 1)
		go func() {
			done <- a.Tx(ctx, func(ctx context.Context) error {
				if _, err := a.ShareRow(ctx, "spaces", "lk"); err != nil {
					return err
				}
				close(held)
				<-release
				return nil
			})
		}()
		<-held
		err = b.Tx(ctx, func(ctx context.Context) error {
			short, cancel := context.WithTimeout(ctx, 5*time.Second)
			defer cancel()
			_, err := b.ShareRow(short, "spaces", "lk")
			return err
		})
		if err != nil {
			t.Fatalf("a second ShareRow: %v", err)
		}
		close(release)
		if err := <-done; err != nil {
			t.Fatal(err)
		}

		// LockRow, then a delete: ShareRow waits, then finds no row.
		held, release = make(chan struct{}), make(chan struct{})
		go func() {
			done <- a.Tx(ctx, func(ctx context.Context) error {
				if _, err := a.LockRow(ctx, "spaces", "lk"); err != nil {
					return err
				}
				close(held)
				<-release
				_, err := a.Exec(ctx, `DELETE FROM spaces WHERE id = 'lk'`)
				return err
			})
		}()
		<-held
		got := make(chan bool, 1)
		go func() {
			_ = b.Tx(ctx, func(ctx context.Context) error {
				ok, err := b.ShareRow(ctx, "spaces", "lk")
				if err != nil {
					t.Error(err)
				}
				got <- ok
				return nil
			})
		}()
		select {
		case ok := <-got:
			t.Fatalf("ShareRow did not wait for LockRow (found: %v)", ok)
		case <-time.After(200 * time.Millisecond):
		}
		close(release)
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		if ok := <-got; ok {
			t.Fatal("ShareRow found the row deleted while it waited")
		}
	})
}
