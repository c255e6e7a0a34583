package workerapi

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"strings"
	"time"

	"github.com/gantry-iac/gantry/internal/db"
	"github.com/gantry-iac/gantry/internal/errs"
	"github.com/gantry-iac/gantry/internal/id"
)

// Registry keeps registered workers.
type Registry struct{ db *db.DB }

// NewRegistry returns a worker registry.
func NewRegistry(d *db.DB) *Registry { return &Registry{db: d} }

// Worker is a registered worker.
type Worker struct {
	ID, Pool, Name, Instance string
	LastSeen                 time.Time
}

func hash(s string) string {
	h := sha256.Sum256([]byte(s))
	return hex.EncodeToString(h[:])
}

// Register records a worker and returns its token.
func (g *Registry) Register(ctx context.Context, pool, name, instance string) (Worker, string, error) {
	w := Worker{ID: id.New("wrk"), Pool: pool, Name: name, Instance: instance, LastSeen: time.Now()}
	token := "gwt_" + w.ID + "_" + id.Secret(32)
	now := time.Now().UnixNano()
	_, err := g.db.Exec(ctx, `INSERT INTO workers (id, pool_id, name, instance, token_hash, registered_at, last_seen_at) VALUES ($1,$2,$3,$4,$5,$6,$6)`,
		w.ID, pool, name, instance, hash(token), now)
	return w, token, err
}

// Authenticate checks a worker token.
func (g *Registry) Authenticate(ctx context.Context, token string) (Worker, error) {
	rest, ok := strings.CutPrefix(token, "gwt_")
	i := strings.LastIndexByte(rest, '_')
	if !ok || i <= 0 {
		return Worker{}, errs.E(errs.Unauthenticated, "invalid worker token")
	}
	var w Worker
	var h string
	var seen int64
	err := g.db.QueryRow(ctx, `SELECT id, pool_id, name, instance, token_hash, last_seen_at FROM workers WHERE id = $1`, rest[:i]).
		Scan(&w.ID, &w.Pool, &w.Name, &w.Instance, &h, &seen)
	if err != nil || subtle.ConstantTimeCompare([]byte(h), []byte(hash(token))) != 1 {
		return Worker{}, errs.E(errs.Unauthenticated, "invalid worker token")
	}
	w.LastSeen = time.Unix(0, seen)
	return w, nil
}

// Seen records that a worker asked for work.
func (g *Registry) Seen(ctx context.Context, workerID string) error {
	_, err := g.db.Exec(ctx, `UPDATE workers SET last_seen_at = $2 WHERE id = $1`, workerID, time.Now().UnixNano())
	return err
}

// Forget removes the workers registered by a server instance (after the
// runs they held were failed).
func (g *Registry) Forget(ctx context.Context, instance string) error {
	_, err := g.db.Exec(ctx, `DELETE FROM workers WHERE instance = $1`, instance)
	return err
}

// OfInstance lists the workers registered by a server instance.
func (g *Registry) OfInstance(ctx context.Context, instance string) ([]string, error) {
	rows, err := g.db.Query(ctx, `SELECT id FROM workers WHERE instance = $1`, instance)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var w string
		if err := rows.Scan(&w); err != nil {
			return nil, err
		}
		out = append(out, w)
	}
	return out, rows.Err()
}
