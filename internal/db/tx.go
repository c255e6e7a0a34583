package db

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
)

// maxTxAttempts bounds how often [DB.Tx] runs fn on PostgreSQL when the
// transaction fails with a serialization failure or deadlock.
const maxTxAttempts = 5

// txKey is the context key under which [DB.Tx] stores its transaction.
type txKey struct{}

// txValue ties a transaction to the DB that began it, so that a context
// carrying one DB's transaction is not used for another DB.
type txValue struct {
	db *DB
	tx *sql.Tx

	afterCommit []func() // see AfterCommit; touched only by the transaction's goroutine
}

// txFrom returns the transaction of d carried by ctx, or nil.
func (d *DB) txFrom(ctx context.Context) *sql.Tx {
	if v, ok := ctx.Value(txKey{}).(*txValue); ok && v != nil && v.db == d {
		return v.tx
	}
	return nil
}

// OutsideTx returns ctx without its transaction: statements run with it
// read what is committed, on a connection of their own. Only reads: on
// SQLite a write outside the transaction fn holds waits for it forever.
func OutsideTx(ctx context.Context) context.Context {
	return context.WithValue(ctx, txKey{}, (*txValue)(nil))
}

// InTx reports whether ctx carries a transaction of d.
func (d *DB) InTx(ctx context.Context) bool {
	return d.txFrom(ctx) != nil
}

// Tx runs fn in a transaction. The context passed to fn carries the
// transaction: [DB.Exec], [DB.Query] and [DB.QueryRow] called with it (or a
// context derived from it) run inside the transaction. If fn returns nil the
// transaction commits; if fn returns an error or panics it rolls back, and
// the error is returned or the panic goes on.
//
// If ctx already carries a transaction of d, fn simply runs in it: the
// outermost Tx decides whether everything commits.
//
// A unique or foreign key violation that fn returns without an error kind
// of its own comes back as an errs.Conflict wrapping it (see conflicted):
// the request lost a race with another; db.IsUniqueViolation and
// db.IsForeignKeyViolation still see the cause.
//
// On SQLite the transaction is IMMEDIATE on the single writer connection, so
// transactions run one at a time. Inside fn, use only the context fn was
// given: a statement that may write, run with a context without the
// transaction, waits for the writer that fn holds and deadlocks until its
// context ends.
//
// On PostgreSQL (READ COMMITTED) the whole fn is run again, up to
// maxTxAttempts times, when the transaction fails with a serialization
// failure or a deadlock (SQLSTATE 40001, 40P01), so fn must have no effects
// outside the database that a retry would repeat. pgx cannot start a
// statement while the rows of another are open on the same transaction:
// read and close rows before the next statement.
//
// A transaction belongs to one goroutine: do not share fn's context with
// other goroutines.
func (d *DB) Tx(ctx context.Context, fn func(ctx context.Context) error) error {
	if d.InTx(ctx) {
		return fn(ctx)
	}
	for attempt := 1; ; attempt++ {
		err := d.runTx(ctx, fn)
		if err == nil || d.Dialect != Postgres || attempt == maxTxAttempts || !isRetryable(err) {
			return d.conflicted(ctx, err)
		}
		d.log.DebugContext(ctx, "retrying transaction", "attempt", attempt, "error", err)
		backoff := time.Duration(attempt)*5*time.Millisecond + rand.N(5*time.Millisecond)
		select {
		case <-ctx.Done():
			return err
		case <-time.After(backoff):
		}
	}
}

// runTx runs fn in one transaction.
func (d *DB) runTx(ctx context.Context, fn func(ctx context.Context) error) error {
	tx, err := d.write.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("db: begin transaction: %w", err)
	}
	finished := false
	defer func() {
		// fn panicked or called runtime.Goexit (t.FailNow in a test): roll
		// back, and let the panic continue with its stack intact.
		if !finished {
			_ = tx.Rollback()
		}
	}()
	tv := &txValue{db: d, tx: tx}
	err = fn(context.WithValue(ctx, txKey{}, tv))
	finished = true
	if err != nil {
		if rbErr := tx.Rollback(); rbErr != nil && !errors.Is(rbErr, sql.ErrTxDone) {
			// A transaction whose context ended (a client gone, a long poll
			// given up) is rolled back by the driver or the server; the
			// failed rollback call says nothing an operator can act on.
			if ctx.Err() != nil {
				d.log.DebugContext(ctx, "transaction rollback after its context ended", "error", rbErr)
			} else {
				d.log.WarnContext(ctx, "transaction rollback failed", "error", rbErr)
			}
		}
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("db: commit: %w", err)
	}
	for _, f := range tv.afterCommit {
		f()
	}
	return nil
}

// isRetryable reports whether err is a PostgreSQL serialization failure or
// deadlock, after which the whole transaction may be run again.
func isRetryable(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && (pgErr.Code == "40001" || pgErr.Code == "40P01")
}
