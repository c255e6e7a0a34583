package db

import (
	"context"
	"database/sql"
	"sync"
)

// Leader elects one process among the replicas sharing a PostgreSQL
// database for a singleton job (the scheduler): the one that holds a
// session advisory lock on a connection of its own. The lock goes with the
// connection, so a replica that dies or loses its connection lets another
// take over at its next try. On SQLite there is one process: it always
// leads.
type Leader struct {
	d   *DB
	key int64

	mu   sync.Mutex
	conn *sql.Conn
}

// NewLeader returns a leader election on the advisory lock key.
func (d *DB) NewLeader(key int64) *Leader { return &Leader{d: d, key: key} }

// Hold reports whether this process leads, trying to take the lead when it
// does not. A lost connection loses the lead.
func (l *Leader) Hold(ctx context.Context) bool {
	if l.d.Dialect != Postgres {
		return true
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.conn != nil {
		if err := l.conn.PingContext(ctx); err == nil {
			return true
		}
		l.d.log.Warn("lost the database connection holding the lead", "lock", l.key)
		_ = l.conn.Close()
		l.conn = nil
	}
	conn, err := l.d.write.Conn(ctx)
	if err != nil {
		return false
	}
	var ok bool
	if err := conn.QueryRowContext(ctx, `SELECT pg_try_advisory_lock($1)`, l.key).Scan(&ok); err != nil || !ok {
		_ = conn.Close()
		return false
	}
	l.conn = conn
	return true
}

// Release gives the lead up (at shutdown).
func (l *Leader) Release() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.conn == nil {
		return
	}
	ctx := context.Background()
	_, _ = l.conn.ExecContext(ctx, `SELECT pg_advisory_unlock($1)`, l.key)
	_ = l.conn.Close()
	l.conn = nil
}
