package db

import (
	"context"
	"log/slog"
)

// MigrateUpTo returns ctx making Open apply the migrations up to version
// only, for tests of migrations that mend existing data.
func MigrateUpTo(ctx context.Context, version int64) context.Context {
	return context.WithValue(ctx, upToKey{}, version)
}

// SetLog replaces the logger of d, for tests of what it logs.
func SetLog(d *DB, l *slog.Logger) { d.log = l }
