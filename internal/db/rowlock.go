package db

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"regexp"
)

// Check-then-act in a transaction.
//
// On SQLite every transaction is IMMEDIATE on the single writer, so what a
// transaction reads stays true until it commits. On PostgreSQL (READ
// COMMITTED) it does not: two replicas can each check a condition ("the
// role exists", "the space holds nothing") and each act on it. The rule
// that keeps references sound on both:
//
//   - A transaction that adds a row naming another (a binding naming its
//     role and space, a stack naming its space and worker pool) first calls
//     [DB.ShareRow] on every row it names, and fails cleanly when one is
//     gone.
//   - A transaction that deletes a row after checking that nothing names
//     it, or that reads a row, then changes it or what hangs under it (a
//     read-modify-write), first calls [DB.LockRow] on that row.
//
// ShareRow waits for a LockRow holder, and LockRow for every ShareRow and
// LockRow holder, until their transactions end; after the wait each sees
// what the other committed: the deleted row is gone, the added child is
// counted. Shared holders do not wait for each other, so adding children to
// one parent still runs in parallel. Never call ShareRow on a row the same
// transaction then updates: two such transactions would deadlock (and be
// run again, see [DB.Tx]); take LockRow instead.

// lockable is the form of the table names LockRow and ShareRow take (always
// constants in the caller's code, never input).
var lockable = regexp.MustCompile(`^[a-z_]+$`)

// LockRow locks the row of table whose id column is id until the
// transaction in ctx ends, excluding every other LockRow and ShareRow of
// the row (and updates and deletes of it), and reports whether the row
// exists. It must run inside [DB.Tx]. See the rule above.
func (d *DB) LockRow(ctx context.Context, table, id string) (bool, error) {
	return d.lockRow(ctx, table, id, " FOR UPDATE")
}

// ShareRow locks the row of table whose id column is id until the
// transaction in ctx ends against LockRow, updates and deletes, not
// against other ShareRow callers, and reports whether the row exists. It
// must run inside [DB.Tx]. See the rule above.
func (d *DB) ShareRow(ctx context.Context, table, id string) (bool, error) {
	return d.lockRow(ctx, table, id, " FOR SHARE")
}

func (d *DB) lockRow(ctx context.Context, table, id, clause string) (bool, error) {
	if !d.InTx(ctx) {
		return false, errors.New("db: row lock outside a transaction")
	}
	if !lockable.MatchString(table) {
		return false, fmt.Errorf("db: row lock on table %q", table)
	}
	if d.Dialect != Postgres {
		// The transaction holds SQLite's only writer already.
		clause = ""
	}
	var one int
	err := d.QueryRow(ctx, `SELECT 1 FROM `+table+` WHERE id = $1`+clause, id).Scan(&one)
	if errors.Is(err, sql.ErrNoRows) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("db: locking %s %q: %w", table, id, err)
	}
	return true, nil
}
