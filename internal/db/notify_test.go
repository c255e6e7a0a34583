package db_test

import (
	"context"
	"testing"
	"time"

	"github.com/gantry-iac/gantry/internal/db"
	"github.com/gantry-iac/gantry/internal/db/dbtest"
)

// A notification reaches a listener on its own connection, as it would on
// another replica of the same PostgreSQL database; on SQLite both are no-ops.
func TestNotifyListen(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, d *db.DB) {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		if d.Dialect == db.SQLite {
			if err := d.Notify(ctx, "ch", "x"); err != nil {
				t.Fatal(err)
			}
			if err := d.Listen(ctx, "ch", func(string) {}); err != nil {
				t.Fatal(err)
			}
			return
		}
		got := make(chan string, 10)
		done := make(chan struct{})
		go func() {
			defer close(done)
			_ = d.Listen(ctx, "gantry_test", func(p string) { got <- p })
		}()
		// Notify until the listener has subscribed and hears one.
		deadline := time.After(10 * time.Second)
		for {
			if err := d.Notify(ctx, "gantry_test", "run:abc pool:"); err != nil {
				t.Fatal(err)
			}
			select {
			case p := <-got:
				if p != "run:abc pool:" {
					t.Fatalf("payload %q", p)
				}
				cancel()
				<-done
				return
			case <-time.After(50 * time.Millisecond):
			case <-deadline:
				t.Fatal("no notification received")
			}
		}
	})
}
