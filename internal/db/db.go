// Package db opens Gantry's database (SQLite or PostgreSQL), runs the
// embedded migrations, and gives the domain stores one small API for running
// SQL written once with PostgreSQL-style $1 placeholders. Transactions travel
// in the context (see [DB.Tx]).
//
// # Values
//
// Columns hold the same Go values on both databases:
//
//   - Times are BIGINT nanoseconds since the Unix epoch, made in Go with
//     [Nanos] and read back with [FromNanos]; 0 means "never".
//   - Booleans are BOOLEAN: write a Go bool, scan into a *bool (or
//     *sql.NullBool). SQLite stores 1/0, which database/sql converts to bool
//     on Scan; do not scan a boolean into *any, which differs per driver.
//   - Bytes are BLOB/BYTEA: write and scan []byte. An empty value scans as
//     nil on SQLite and as []byte{} on PostgreSQL: test len, not nil. So
//     that such a value can be written back, [DB.Exec], [DB.Query] and
//     [DB.QueryRow] write a nil []byte as empty bytes, not NULL (pass an
//     untyped nil for NULL).
//   - JSON documents are TEXT written and read as string.
package db

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
)

// Dialect names the SQL database behind a [DB].
type Dialect int

const (
	// SQLite is the embedded, pure-Go SQLite (modernc.org/sqlite).
	SQLite Dialect = iota + 1
	// Postgres is PostgreSQL through pgx.
	Postgres
)

// String returns "sqlite" or "postgres", which is also the name of the
// dialect's migrations directory.
func (d Dialect) String() string {
	switch d {
	case SQLite:
		return "sqlite"
	case Postgres:
		return "postgres"
	}
	return fmt.Sprintf("Dialect(%d)", int(d))
}

// DB is an open, migrated database. It is safe for concurrent use.
//
// On SQLite it holds two pools over the same file: a writer pool of exactly
// one connection, used by every transaction and every statement that may
// write, and a pool of reader connections used by plain SELECTs outside a
// transaction. See openSQLite for why.
//
// On PostgreSQL both pools are the same pgx pool.
type DB struct {
	// Dialect is the database behind this DB.
	Dialect Dialect

	write  *sql.DB
	read   *sql.DB
	log    *slog.Logger
	schema int64 // the schema version, once migrated

	queries    sync.Map // query text -> *query
	numQueries atomic.Int64
	prepMu     sync.Mutex
	closing    bool           // under prepMu: Close began, prepare nothing more
	preparing  sync.WaitGroup // statements being prepared (see stmt)

	locksMu sync.Mutex
	locks   map[int64]chan struct{} // SQLite's WithLock locks
}

// Open opens the database named by url and brings its schema up to date.
//
// An empty url opens (creating if needed) the SQLite file
// <dataDir>/gantry.db; a url starting with postgres:// or postgresql://
// connects to PostgreSQL and ignores dataDir. Any other url is an error.
// A nil log discards log records.
func Open(ctx context.Context, url string, dataDir string, log *slog.Logger) (*DB, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if err := CheckURL(url); err != nil {
		return nil, err
	}
	if url == "" {
		return openSQLite(ctx, dataDir, log)
	}
	return openPostgres(ctx, url, log)
}

// CheckURL checks the form of a database URL as Open takes it, without
// connecting: empty (SQLite) or postgres://. Its errors never echo the
// URL, which may hold a password.
func CheckURL(url string) error {
	switch {
	case url == "":
		return nil
	case strings.HasPrefix(url, "postgres://"), strings.HasPrefix(url, "postgresql://"):
		if ambiguousUserinfo(url) {
			// pgx's errors would show what it took for the host or the
			// database: the rest of the password.
			return errAmbiguousURL
		}
		return nil
	}
	scheme, _, ok := strings.Cut(url, "://")
	if !ok {
		scheme = "(none)"
	}
	return fmt.Errorf("db: unsupported database URL scheme %q: use an empty URL for SQLite or postgres://", scheme)
}

// Close closes all connections. Statements running at the time fail.
func (d *DB) Close() error {
	d.prepMu.Lock()
	d.closing = true
	d.prepMu.Unlock()
	d.preparing.Wait()
	err := d.write.Close()
	if d.read != d.write {
		err = errors.Join(err, d.read.Close())
	}
	return err
}

// SchemaVersion is the version of the database's schema when it was
// opened (the newest migration applied): what the log's start lines say.
func (d *DB) SchemaVersion() int64 { return d.schema }

// Ping checks that the database can be reached.
func (d *DB) Ping(ctx context.Context) error {
	return d.write.PingContext(ctx)
}

// ForUpdateSkipLocked returns the row-locking clause that work-claiming
// queries append to their SELECT: " FOR UPDATE SKIP LOCKED" on PostgreSQL
// and "" on SQLite, where the single writer already serializes claims.
// Claim queries must run inside [DB.Tx].
func (d *DB) ForUpdateSkipLocked() string {
	if d.Dialect == Postgres {
		return " FOR UPDATE SKIP LOCKED"
	}
	return ""
}

// Exec runs a statement that returns no rows, in the context's transaction
// if it has one. Outside a transaction, a unique or foreign key violation
// comes back as a conflict, as from [DB.Tx].
func (d *DB) Exec(ctx context.Context, query string, args ...any) (sql.Result, error) {
	q, args := d.prepare(query), normalizeArgs(args)
	s := d.stmt(q, false)
	if tx := d.txFrom(ctx); tx != nil {
		if s != nil {
			return tx.StmtContext(ctx, s).ExecContext(ctx, args...)
		}
		return tx.ExecContext(ctx, q.text, args...)
	}
	var res sql.Result
	var err error
	if s != nil {
		res, err = s.ExecContext(ctx, args...)
	} else {
		res, err = d.write.ExecContext(ctx, q.text, args...)
	}
	return res, d.conflicted(ctx, err)
}

// Query runs a statement that returns rows, in the context's transaction if
// it has one. The caller must close the rows.
func (d *DB) Query(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	q, args := d.prepare(query), normalizeArgs(args)
	if tx := d.txFrom(ctx); tx != nil {
		if s := d.stmt(q, false); s != nil {
			return tx.StmtContext(ctx, s).QueryContext(ctx, args...)
		}
		return tx.QueryContext(ctx, q.text, args...)
	}
	if s := d.stmt(q, q.readOnly); s != nil {
		return s.QueryContext(ctx, args...)
	}
	return d.pool(q).QueryContext(ctx, q.text, args...)
}

// QueryRow runs a statement that returns at most one row, in the context's
// transaction if it has one. Errors are deferred to the row's Scan, which
// returns sql.ErrNoRows when there is no row.
func (d *DB) QueryRow(ctx context.Context, query string, args ...any) *sql.Row {
	q, args := d.prepare(query), normalizeArgs(args)
	if tx := d.txFrom(ctx); tx != nil {
		if s := d.stmt(q, false); s != nil {
			return tx.StmtContext(ctx, s).QueryRowContext(ctx, args...)
		}
		return tx.QueryRowContext(ctx, q.text, args...)
	}
	if s := d.stmt(q, q.readOnly); s != nil {
		return s.QueryRowContext(ctx, args...)
	}
	return d.pool(q).QueryRowContext(ctx, q.text, args...)
}

// pool picks the pool for a statement outside a transaction: the reader pool
// for a plain SELECT, else the writer.
func (d *DB) pool(q *query) *sql.DB {
	if q.readOnly {
		return d.read
	}
	return d.write
}
