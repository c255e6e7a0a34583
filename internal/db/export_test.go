package db

import "context"

// MigrateUpTo returns ctx making Open apply the migrations up to version
// only, for tests of migrations that mend existing data.
func MigrateUpTo(ctx context.Context, version int64) context.Context {
	return context.WithValue(ctx, upToKey{}, version)
}
