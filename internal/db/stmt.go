package db

import (
	"context"
	"database/sql"
	"sync/atomic"
)

// maxPreparedQueries bounds how many distinct statements a SQLite DB keeps
// prepared (on each of its connections).
const maxPreparedQueries = 500

// prepared holds a query's statements kept prepared on SQLite: parsing and
// planning a statement costs SQLite more than running most of Gantry's.
// PostgreSQL needs none of this: pgx keeps its own per-connection cache.
type prepared struct {
	stmts     [2]atomic.Pointer[sql.Stmt] // on the writer pool, on the reader pool
	preparing [2]atomic.Bool
}

// stmt returns q prepared on the writer (reader false) or reader pool, or
// nil when it is not kept prepared or not prepared yet. The first call
// prepares it in the background: the writer's only connection may be held
// by the caller's own transaction, which a synchronous prepare would wait
// for forever.
func (d *DB) stmt(q *query, reader bool) *sql.Stmt {
	if q.prep == nil {
		return nil
	}
	i, pool := 0, d.write
	if reader {
		i, pool = 1, d.read
	}
	if s := q.prep.stmts[i].Load(); s != nil {
		return s
	}
	if q.prep.preparing[i].CompareAndSwap(false, true) {
		d.prepMu.Lock()
		defer d.prepMu.Unlock()
		if d.closing {
			return nil
		}
		d.preparing.Add(1)
		go func() {
			defer d.preparing.Done()
			// An error (the DB closed, a statement SQLite cannot prepare)
			// leaves the query unprepared; running it reports any error.
			if s, err := pool.PrepareContext(context.Background(), q.text); err == nil {
				q.prep.stmts[i].Store(s)
			}
		}()
	}
	return nil
}
