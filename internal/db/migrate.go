package db

import (
	"context"
	"database/sql"
	"embed"
	"errors"
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

// migrate applies the dialect's pending migrations to pool and returns
// the schema version it left.
//
// On PostgreSQL a session advisory lock keeps two servers starting at once
// from migrating together. SQLite needs none: migrations run in IMMEDIATE
// transactions, which exclude every other writer.
func migrate(ctx context.Context, pool *sql.DB, dialect Dialect, log *slog.Logger) (int64, error) {
	fsys, err := fs.Sub(migrations, "migrations/"+dialect.String())
	if err != nil {
		return 0, fmt.Errorf("db: migrations: %w", err)
	}
	opts := []goose.ProviderOption{goose.WithDisableGlobalRegistry(true)}
	gooseDialect := goose.DialectSQLite3
	if dialect == Postgres {
		gooseDialect = goose.DialectPostgres
		// Poll once a second for up to ten minutes.
		locker, err := lock.NewPostgresSessionLocker(lock.WithLockTimeout(1, 600))
		if err != nil {
			return 0, fmt.Errorf("db: migration lock: %w", err)
		}
		opts = append(opts, goose.WithSessionLocker(locker))
	}
	provider, err := goose.NewProvider(gooseDialect, pool, fsys, opts...)
	if err != nil {
		return 0, fmt.Errorf("db: migrations: %w", err)
	}
	// provider.Close would close pool, which the caller owns: not called.
	//
	// The schema version is checked before migrating, so that an older
	// binary touches nothing, and again after: on PostgreSQL a newer replica
	// may have migrated while this one waited for the lock, and Up then has
	// nothing to do.
	if _, err := checkNotNewer(ctx, provider); err != nil {
		return 0, err
	}
	var results []*goose.MigrationResult
	if v, ok := ctx.Value(upToKey{}).(int64); ok {
		results, err = provider.UpTo(ctx, v)
	} else {
		results, err = provider.Up(ctx)
	}
	if err != nil {
		return 0, fmt.Errorf("db: migrate %s: %w", dialect, err)
	}
	for _, r := range results {
		log.Info("database migration applied", "dialect", dialect.String(),
			"version", r.Source.Version, "file", r.Source.Path, "duration", r.Duration)
	}
	return checkNotNewer(ctx, provider)
}

// upToKey is the context key of the last migration to apply, which tests
// of migrations that mend data set (see export_test.go).
type upToKey struct{}

// ErrSchemaTooNew is returned by [Open] when the database was migrated by a
// newer Gantry than this binary: its schema version is above the highest
// migration this binary embeds.
var ErrSchemaTooNew = errors.New("the database was migrated by a newer Gantry")

// checkNotNewer fails with [ErrSchemaTooNew] if the database records a
// migration version above the newest one this binary embeds. Such a
// binary does not know the newer schema and could write data that the
// newer release no longer reads (for example a secret sealed the old way).
// This is the only downgrade guard: a change in how data is written that
// older binaries must not meet needs a migration, empty if nothing else,
// to raise the version. It returns the database's schema version.
func checkNotNewer(ctx context.Context, provider *goose.Provider) (int64, error) {
	current, err := provider.GetDBVersion(ctx)
	if err != nil {
		return 0, fmt.Errorf("db: schema version: %w", err)
	}
	sources := provider.ListSources()
	var known int64
	if len(sources) > 0 {
		known = sources[len(sources)-1].Version
	}
	if current > known {
		return 0, fmt.Errorf("db: %w: schema version %d > %d, the newest this binary knows; "+
			"run that Gantry release (or a later one), or restore a backup taken before the upgrade",
			ErrSchemaTooNew, current, known)
	}
	return current, nil
}

// HoldStarts keeps servers from starting on the database until the
// transaction in ctx ends: on PostgreSQL it takes, for the transaction,
// the advisory lock that every server takes to migrate at start (a
// starting server waits for it). On SQLite it does nothing: the data
// directory's lock (package dirlock) keeps a server from starting.
func (d *DB) HoldStarts(ctx context.Context) error {
	if d.Dialect != Postgres {
		return nil
	}
	if !d.InTx(ctx) {
		return errors.New("db: HoldStarts outside a transaction")
	}
	_, err := d.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, lock.DefaultLockID)
	return err
}
