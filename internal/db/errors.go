package db

import (
	"context"
	"database/sql/driver"
	"errors"
	"strings"

	"github.com/gantry-iac/gantry/internal/errs"
	"github.com/jackc/pgx/v5/pgconn"
	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"
)

// IsUniqueViolation reports whether err (or an error it wraps) is a
// violation of a primary key or unique constraint, on either database.
func IsUniqueViolation(err error) bool {
	return pgCode(err) == "23505" ||
		sqliteCode(err) == sqlite3.SQLITE_CONSTRAINT_UNIQUE ||
		sqliteCode(err) == sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY
}

// IsForeignKeyViolation reports whether err (or an error it wraps) is a
// violation of a foreign key constraint, on either database.
func IsForeignKeyViolation(err error) bool {
	return pgCode(err) == "23503" || sqliteCode(err) == sqlite3.SQLITE_CONSTRAINT_FOREIGNKEY
}

// IsInvalidText reports whether err (or an error it wraps) is PostgreSQL
// refusing a text: a NUL character or invalid UTF-8 (SQLSTATE 22021), or a
// \u0000 escape in JSON (22P05). SQLite stores both.
func IsInvalidText(err error) bool {
	c := pgCode(err)
	return c == "22021" || c == "22P05"
}

// Unavailable says why the database cannot do work for now, for clients:
// "" when err is not such an error. Only genuine unavailability counts (no
// connection can be made, the server refuses or ends connections, it has
// too many clients, its disk is full); an error of the query itself, a
// lock timeout or SQLite's busy timeout do not. The message names nothing
// of the database's address or user.
func Unavailable(err error) string {
	if err == nil {
		return ""
	}
	if IsDiskFull(err) {
		return "the disk holding the database is full"
	}
	code := pgCode(err)
	switch {
	case code == "53300":
		return "the database is unavailable: it has too many clients"
	case code == "57P01" || code == "57P02" || code == "57P03":
		return "the database is unavailable: it is shutting down or starting up"
	case strings.HasPrefix(code, "08"):
		return "the database is unavailable: the connection to it failed"
	}
	var ce *pgconn.ConnectError
	if errors.As(err, &ce) || errors.Is(err, driver.ErrBadConn) {
		return "the database is unavailable: the server cannot connect to it"
	}
	return ""
}

// IsDiskFull reports whether err (or an error it wraps) says that the disk
// holding the database is full: SQLite's SQLITE_FULL, PostgreSQL's
// disk_full (53100).
func IsDiskFull(err error) bool {
	return sqliteCode(err)&0xff == sqlite3.SQLITE_FULL || pgCode(err) == "53100"
}

// pgCode returns the SQLSTATE of a PostgreSQL error, or "".
func pgCode(err error) string {
	var e *pgconn.PgError
	if errors.As(err, &e) {
		return e.Code
	}
	return ""
}

// sqliteCode returns the extended result code of a SQLite error, or 0.
func sqliteCode(err error) int {
	var e *sqlite.Error
	if errors.As(err, &e) {
		return e.Code()
	}
	return 0
}

// Messages of the constraint violations that conflicted maps.
const (
	msgUniqueConflict = "the request conflicts with a concurrent change: what it creates was created meanwhile (look again, then retry)"
	msgFKConflict     = "the request conflicts with a concurrent change: something it refers to was deleted meanwhile, or something it deletes is still in use (look again, then retry)"
)

// conflicted is the one place where a unique or foreign key violation
// that escaped a transaction ([DB.Tx]) or a statement outside one
// ([DB.Exec]) becomes an error kind: a conflict, not an internal error.
// Such a violation means that a concurrent request (another replica)
// created or deleted what this one relied on; domain code that expects one
// maps it with a message of its own first, and such errors (with a kind)
// pass unchanged. The cause is logged, never shown.
func (d *DB) conflicted(ctx context.Context, err error) error {
	if err == nil || errs.KindOf(err) != errs.Internal {
		return err
	}
	var msg string
	switch {
	case IsUniqueViolation(err):
		msg = msgUniqueConflict
	case IsForeignKeyViolation(err):
		msg = msgFKConflict
	default:
		return err
	}
	d.log.InfoContext(ctx, "constraint violation answered as a conflict", "error", err)
	return errs.Wrap(errs.Conflict, err, "%s", msg)
}
