package db_test

import (
	"context"
	"errors"
	"testing"

	"github.com/gantry-iac/gantry/internal/db"
	"github.com/gantry-iac/gantry/internal/db/dbtest"
)

func TestAfterCommit(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, d *db.DB) {
		ctx := context.Background()
		ran := 0
		// Outside a transaction: at once.
		d.AfterCommit(ctx, func() { ran++ })
		if ran != 1 {
			t.Fatalf("outside a transaction: ran %d times", ran)
		}
		// Rolled back: never.
		_ = d.Tx(ctx, func(ctx context.Context) error {
			d.AfterCommit(ctx, func() { ran += 10 })
			return errors.New("boom")
		})
		if ran != 1 {
			t.Fatalf("after a rollback: ran = %d", ran)
		}
		// Committed, from a nested Tx too: after the commit, once.
		err := d.Tx(ctx, func(ctx context.Context) error {
			if err := d.Tx(ctx, func(ctx context.Context) error {
				d.AfterCommit(ctx, func() { ran += 100 })
				return nil
			}); err != nil {
				return err
			}
			if ran != 1 {
				t.Errorf("ran before the outer commit")
			}
			return nil
		})
		if err != nil || ran != 101 {
			t.Fatalf("after a commit: ran = %d, %v", ran, err)
		}
	})
}
