package db

import (
	"context"
	"database/sql"
	"fmt"
	"log/slog"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // registers the "pgx" driver
)

// maxPostgresConns caps the pool so that a burst of requests queues in Go
// rather than exhausting the server's max_connections.
const maxPostgresConns = 32

// openPostgres connects to PostgreSQL and migrates. Errors never include
// the URL, which may hold a password.
func openPostgres(ctx context.Context, url string, log *slog.Logger) (*DB, error) {
	pool, err := sql.Open("pgx", url)
	if err != nil {
		return nil, fmt.Errorf("db: open PostgreSQL: %w", err)
	}
	pool.SetMaxOpenConns(maxPostgresConns)
	pool.SetMaxIdleConns(maxPostgresConns)
	pool.SetConnMaxIdleTime(5 * time.Minute)
	if err := pool.PingContext(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("db: connect to PostgreSQL: %w", err)
	}
	schema, err := migrate(ctx, pool, Postgres, log)
	if err != nil {
		pool.Close()
		return nil, err
	}
	log.Info("database opened", "dialect", Postgres.String(), "schema_version", schema)
	return &DB{Dialect: Postgres, write: pool, read: pool, log: log, schema: schema}, nil
}
