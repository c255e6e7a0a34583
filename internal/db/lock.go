package db

import (
	"context"
	"database/sql/driver"
	"errors"
	"fmt"
)

// WithLock runs fn holding the lock named key among the replicas sharing
// the database, without holding a transaction: fn may call a slow outside
// service (Microsoft Graph) and write what it got in short transactions of
// its own, while every other writer goes on. On PostgreSQL the lock is a
// session advisory lock on a connection of its own (a replica that dies
// lets it go with its connection); on SQLite there is one process and the
// lock is a mutex. Waiting for the lock ends with ctx.
//
// ctx must not carry a transaction: fn would run inside it.
func (d *DB) WithLock(ctx context.Context, key int64, fn func(ctx context.Context) error) error {
	if d.InTx(ctx) {
		return errors.New("db: WithLock inside a transaction")
	}
	if d.Dialect != Postgres {
		mu := d.mutex(key)
		select {
		case mu <- struct{}{}:
		case <-ctx.Done():
			return ctx.Err()
		}
		defer func() { <-mu }()
		return fn(ctx)
	}
	conn, err := d.write.Conn(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, `SELECT pg_advisory_lock($1)`, key); err != nil {
		return fmt.Errorf("db: taking lock %d: %w", key, err)
	}
	defer func() {
		// With a context of its own: fn's may have ended. A connection
		// that cannot unlock is closed, which unlocks.
		if _, err := conn.ExecContext(context.WithoutCancel(ctx), `SELECT pg_advisory_unlock($1)`, key); err != nil {
			_ = conn.Raw(func(any) error { return driver.ErrBadConn })
		}
	}()
	return fn(ctx)
}

// mutex returns the in-process lock of key (a channel of capacity one, so
// that waiting can end with a context).
func (d *DB) mutex(key int64) chan struct{} {
	d.locksMu.Lock()
	defer d.locksMu.Unlock()
	if d.locks == nil {
		d.locks = map[int64]chan struct{}{}
	}
	mu, ok := d.locks[key]
	if !ok {
		mu = make(chan struct{}, 1)
		d.locks[key] = mu
	}
	return mu
}
