package workerapi

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
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
	Drained                  bool   // claims no new jobs
	PublicKey                string // of the pool key pair it holds ("" for none)
	LastSeen                 time.Time
}

func hash(s string) string {
	h := sha256.Sum256([]byte(s))
	return hex.EncodeToString(h[:])
}

// Register records a worker and returns its token. A private pool's row
// is shared for the transaction (see db.ShareRow), and admitted, when
// set, runs in it: so the checks it makes (the pool token, the pool's
// key) hold until the worker is stored, against a reset of the pool's
// token (which deletes its workers), a new key and the pool's deletion,
// done on any replica: either the worker is stored first and goes with
// the pool's other workers, or it is refused. Only built-in workers
// (pool "") are recorded under the server instance they name: a private
// worker's instance is ignored, so that no server's restart recovery
// (OfInstance, Forget) can ever take it for one of its own.
func (g *Registry) Register(ctx context.Context, pool string, req RegisterRequest, admitted func(ctx context.Context) error) (Worker, string, error) {
	if pool != "" {
		req.Instance = ""
	}
	w := Worker{ID: id.New("wrk"), Pool: pool, Name: req.Name, Instance: req.Instance, PublicKey: strings.TrimSpace(req.PublicKey), LastSeen: time.Now()}
	token := "gwt_" + w.ID + "_" + id.Secret(32)
	now := time.Now().UnixNano()
	lbl, _ := json.Marshal(nonNilMap(req.Labels))
	tools, _ := json.Marshal(nonNilMap(req.Tools))
	features := req.Features
	if features == nil {
		features = []string{}
	}
	feat, _ := json.Marshal(features)
	err := g.db.Tx(ctx, func(ctx context.Context) error {
		if pool != "" {
			ok, err := g.db.ShareRow(ctx, "worker_pools", pool)
			if err != nil {
				return err
			}
			if !ok {
				return errs.E(errs.Unauthenticated, "worker pool %s no longer exists", pool)
			}
		}
		if admitted != nil {
			if err := admitted(ctx); err != nil {
				return err
			}
		}
		_, err := g.db.Exec(ctx, `INSERT INTO workers (id, pool_id, name, instance, token_hash, registered_at, last_seen_at, labels, tools, concurrency, public_key, features)
			VALUES ($1,$2,$3,$4,$5,$6,$6,$7,$8,$9,$10,$11)`,
			w.ID, pool, req.Name, req.Instance, hash(token), now, string(lbl), string(tools), max(req.Concurrency, 1), w.PublicKey, string(feat))
		return err
	})
	return w, token, err
}

func nonNilMap(m map[string]string) map[string]string {
	if m == nil {
		return map[string]string{}
	}
	return m
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
	err := g.db.QueryRow(ctx, `SELECT id, pool_id, name, instance, token_hash, last_seen_at, drained, public_key FROM workers WHERE id = $1`, rest[:i]).
		Scan(&w.ID, &w.Pool, &w.Name, &w.Instance, &h, &seen, &w.Drained, &w.PublicKey)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return Worker{}, fmt.Errorf("checking a worker token: %w", err) // 5xx: the worker retries
	}
	if err != nil || subtle.ConstantTimeCompare([]byte(h), []byte(hash(token))) != 1 {
		return Worker{}, errs.E(errs.Unauthenticated, "invalid worker token (unknown worker, or its pool's token was reset: register again with the new pool token)")
	}
	w.LastSeen = time.Unix(0, seen)
	return w, nil
}

// Pool returns the pool a registered worker belongs to.
func (g *Registry) Pool(ctx context.Context, workerID string) (string, error) {
	var pool string
	err := g.db.QueryRow(ctx, `SELECT pool_id FROM workers WHERE id = $1`, workerID).Scan(&pool)
	if errors.Is(err, sql.ErrNoRows) {
		return "", errs.E(errs.Unauthenticated, "worker %s is no longer registered", workerID)
	}
	return pool, err
}

// Drained reports whether a worker was drained (it takes no new jobs).
func (g *Registry) Drained(ctx context.Context, workerID string) (bool, error) {
	var d bool
	err := g.db.QueryRow(ctx, `SELECT drained FROM workers WHERE id = $1`, workerID).Scan(&d)
	if errors.Is(err, sql.ErrNoRows) {
		return false, errs.E(errs.Unauthenticated, "worker %s is no longer registered (its pool's token was reset?)", workerID)
	}
	if err != nil {
		return false, fmt.Errorf("checking a worker: %w", err)
	}
	return d, nil
}

// Seen records that a worker asked for work.
func (g *Registry) Seen(ctx context.Context, workerID string) error {
	_, err := g.db.Exec(ctx, `UPDATE workers SET last_seen_at = $2 WHERE id = $1`, workerID, time.Now().UnixNano())
	return err
}

// Drain marks a worker drained: it claims no new jobs (it is stopping
// while its jobs run on; see Handler.drain).
func (g *Registry) Drain(ctx context.Context, workerID string) error {
	_, err := g.db.Exec(ctx, `UPDATE workers SET drained = TRUE WHERE id = $1`, workerID)
	return err
}

// Remove forgets a worker that left (see Handler.deregister) and reports
// whether it did. A worker that still holds a run in a job in progress
// (the caller failed the ones it held: one that lost a race is all that
// can be left) is kept, drained so that it gets no job, for the reaper
// and PruneWorkers, as a worker that went silent.
func (g *Registry) Remove(ctx context.Context, workerID string) (bool, error) {
	res, err := g.db.Exec(ctx, `DELETE FROM workers WHERE id = $1 AND NOT EXISTS
		(SELECT 1 FROM runs WHERE runs.worker_id = workers.id AND runs.state IN ('PREPARING','INITIALIZING','PLANNING','PERFORMING','APPLYING'))`, workerID)
	if err != nil {
		return false, err
	}
	if k, _ := res.RowsAffected(); k > 0 {
		return true, nil
	}
	_, err = g.db.Exec(ctx, `UPDATE workers SET drained = TRUE WHERE id = $1`, workerID)
	return false, err
}

// Forget removes the built-in workers registered by a server instance
// (after the runs they held were failed). An empty instance names none:
// private workers have no instance.
func (g *Registry) Forget(ctx context.Context, instance string) error {
	if instance == "" {
		return nil
	}
	_, err := g.db.Exec(ctx, `DELETE FROM workers WHERE instance = $1 AND pool_id = ''`, instance)
	return err
}

// OfInstance lists the built-in workers registered by a server instance;
// an empty instance names none.
func (g *Registry) OfInstance(ctx context.Context, instance string) ([]string, error) {
	if instance == "" {
		return nil, nil
	}
	return db.Collect(ctx, g.db, func(row db.Scanner) (string, error) {
		var w string
		err := row.Scan(&w)
		return w, err
	}, `SELECT id FROM workers WHERE instance = $1 AND pool_id = ''`, instance)
}
