package db

import (
	"errors"

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
