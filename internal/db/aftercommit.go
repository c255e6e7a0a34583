package db

import "context"

// AfterCommit arranges for fn to run once the transaction of d that ctx
// carries has committed; if it rolls back (or is retried, on PostgreSQL)
// fn never runs for that attempt. Without a transaction in ctx, fn runs at
// once: the statements before it have already committed. fn runs on the
// goroutine that called [DB.Tx] and must not block.
func (d *DB) AfterCommit(ctx context.Context, fn func()) {
	if v, ok := ctx.Value(txKey{}).(*txValue); ok && v.db == d {
		v.afterCommit = append(v.afterCommit, fn)
		return
	}
	fn()
}
