package server

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/gantry-iac/gantry/internal/audit"
	"github.com/gantry-iac/gantry/internal/contexts"
	"github.com/gantry-iac/gantry/internal/db"
	"github.com/gantry-iac/gantry/internal/integration"
	"github.com/gantry-iac/gantry/internal/notify"
	"github.com/gantry-iac/gantry/internal/run"
	"github.com/gantry-iac/gantry/internal/runtoken"
	"github.com/gantry-iac/gantry/internal/secrets"
	"github.com/gantry-iac/gantry/internal/stack"
	"github.com/gantry-iac/gantry/internal/state"
)

// SealedColumns are all the columns holding values sealed with the data
// key: every package's SealedColumns. A test fails when a column holding
// sealed values is missing (datakey_test.go).
func SealedColumns() []secrets.SealedColumn {
	return slices.Concat(stack.SealedColumns, contexts.SealedColumns, state.SealedColumns, run.SealedColumns,
		notify.SealedColumns, audit.SealedColumns, runtoken.SealedColumns, integration.SealedColumns)
}

// RotateDataKey re-encrypts every sealed column under a new data key
// (secrets.RotateDataKey), refusing while a server runs on the database:
// a running server holds the old data key and would go on sealing with it.
// On PostgreSQL a server is running when it recorded itself alive within
// replicaTimeout, and no server can start until the rotation ends (it
// waits for the migration lock); on SQLite the caller holds the data
// directory's lock.
//
// The rotation is recorded in the audit trail (data_key.rotate, actor
// gantry) in its transaction.
func RotateDataKey(ctx context.Context, d *db.DB, master []byte) (old, next secrets.DataKeyInfo, err error) {
	err = d.Tx(ctx, func(ctx context.Context) error {
		var err error
		if old, next, err = rotateDataKey(ctx, d, master); err != nil {
			return err
		}
		return audit.NewService(d, nil).Hook().Record(ctx, "data_key.rotate", "data_key", next.ID, "root",
			map[string]any{"data_key": old.ID}, map[string]any{"data_key": next.ID})
	})
	return old, next, err
}

func rotateDataKey(ctx context.Context, d *db.DB, master []byte) (old, next secrets.DataKeyInfo, err error) {
	return secrets.RotateDataKey(ctx, d, master, SealedColumns(), func(ctx context.Context) error {
		if err := d.HoldStarts(ctx); err != nil {
			return err
		}
		var n int
		if err := d.QueryRow(ctx, `SELECT COUNT(*) FROM replicas WHERE seen_at > $1`,
			time.Now().Add(-replicaTimeout).UnixNano()).Scan(&n); err != nil {
			return err
		}
		if n > 0 {
			return fmt.Errorf("%d server(s) on this database recorded themselves alive in the last %s: stop every server first "+
				"(a running server keeps the old data key and would go on encrypting with it); nothing was changed", n, replicaTimeout)
		}
		return nil
	})
}
