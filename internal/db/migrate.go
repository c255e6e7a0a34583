package db

import (
	"context"
	"database/sql"
	"embed"
	"fmt"
	"io/fs"
	"log/slog"

	"github.com/pressly/goose/v3"
	"github.com/pressly/goose/v3/lock"
)

// migrations holds one directory per dialect (migrations/sqlite,
// migrations/postgres) with the same version numbers in each.
//
//go:embed migrations
var migrations embed.FS

// migrate applies the dialect's pending migrations to pool.
//
// On PostgreSQL a session advisory lock keeps two servers starting at once
// from migrating together. SQLite needs none: migrations run in IMMEDIATE
// transactions, which exclude every other writer.
func migrate(ctx context.Context, pool *sql.DB, dialect Dialect, log *slog.Logger) error {
	fsys, err := fs.Sub(migrations, "migrations/"+dialect.String())
	if err != nil {
		return fmt.Errorf("db: migrations: %w", err)
	}
	opts := []goose.ProviderOption{goose.WithDisableGlobalRegistry(true)}
	gooseDialect := goose.DialectSQLite3
	if dialect == Postgres {
		gooseDialect = goose.DialectPostgres
		// Poll once a second for up to ten minutes.
		locker, err := lock.NewPostgresSessionLocker(lock.WithLockTimeout(1, 600))
		if err != nil {
			return fmt.Errorf("db: migration lock: %w", err)
		}
		opts = append(opts, goose.WithSessionLocker(locker))
	}
	provider, err := goose.NewProvider(gooseDialect, pool, fsys, opts...)
	if err != nil {
		return fmt.Errorf("db: migrations: %w", err)
	}
	// provider.Close would close pool, which the caller owns: not called.
	results, err := provider.Up(ctx)
	if err != nil {
		return fmt.Errorf("db: migrate %s: %w", dialect, err)
	}
	for _, r := range results {
		log.Info("database migration applied", "dialect", dialect.String(),
			"version", r.Source.Version, "file", r.Source.Path, "duration", r.Duration)
	}
	return nil
}
