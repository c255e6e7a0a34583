// Package workerpool keeps worker pools: named groups of private workers
// in a space. A pool's token (shown once; only its hash is kept) lets a
// `gantry worker` register and claim the jobs of the stacks that name the
// pool. A stack may use the pools of its space and of the ancestors it
// inherits from. Stacks that name no pool run on the server's built-in
// pool.
package workerpool

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

	"github.com/gantry-iac/gantry/internal/audit"
	"github.com/gantry-iac/gantry/internal/db"
	"github.com/gantry-iac/gantry/internal/errs"
	"github.com/gantry-iac/gantry/internal/events"
	"github.com/gantry-iac/gantry/internal/id"
	"github.com/gantry-iac/gantry/internal/labels"
	"github.com/gantry-iac/gantry/internal/seal"
	"github.com/gantry-iac/gantry/internal/space"
)

// TokenPrefix starts every pool token: gpt_<pool>_<secret>.
const TokenPrefix = "gpt_"

// Pool is a worker pool.
type Pool struct {
	ID          string
	Name        string
	Space       string
	Labels      []string
	Description string
	PublicKey   string // seals the pool's secrets and workspaces ("" = none)
	// DriftRunLimit caps the pool's drift detection runs at once (0: no
	// limit); the scheduler skips due ones beyond it with a note.
	DriftRunLimit int
	CreatedAt     time.Time
	UpdatedAt     time.Time
}

// Service keeps pools and the status of their workers.
type Service struct {
	db     *db.DB
	spaces *space.Service
	hub    *events.Hub
	// Audit records every change in its transaction (never a token).
	Audit audit.Hook
	// WorkerTimeout is how long a worker may stay silent and still count
	// as connected.
	WorkerTimeout time.Duration
}

// NewService returns a pool service.
func NewService(d *db.DB, spaces *space.Service, hub *events.Hub) *Service {
	return &Service{db: d, spaces: spaces, hub: hub, WorkerTimeout: 60 * time.Second}
}

func hash(s string) string {
	h := sha256.Sum256([]byte(s))
	return hex.EncodeToString(h[:])
}

func newToken(poolID string) string { return TokenPrefix + poolID + "_" + id.Secret(32) }

const cols = `id, name, space_id, labels, description, public_key, drift_run_limit, created_at, updated_at`

func scan(row interface{ Scan(...any) error }) (Pool, error) {
	var p Pool
	var lbl string
	var c, u int64
	if err := row.Scan(&p.ID, &p.Name, &p.Space, &lbl, &p.Description, &p.PublicKey, &p.DriftRunLimit, &c, &u); err != nil {
		return p, err
	}
	var err error
	p.Labels, err = labels.Decode(lbl)
	p.CreatedAt, p.UpdatedAt = time.Unix(0, c).UTC(), time.Unix(0, u).UTC()
	return p, err
}

func validate(p *Pool) error {
	if !id.ValidSlug(p.ID) || p.ID == "builtin" {
		return errs.E(errs.Invalid, "worker pool id %q is not a valid slug (lower-case letters, digits and dashes, at most 63; not \"builtin\")", p.ID)
	}
	if p.Name == "" {
		p.Name = p.ID
	}
	if p.Space == "" {
		p.Space = space.Root
	}
	if len(p.Name) > 255 || len(p.Description) > 4096 {
		return errs.E(errs.Invalid, "worker pool name (255) or description (4096 bytes) too long")
	}
	if p.DriftRunLimit < 0 || p.DriftRunLimit > 100000 {
		return errs.E(errs.Invalid, "drift_run_limit must be from 0 (no limit) to 100000")
	}
	l, err := labels.Normalize(p.Labels)
	p.Labels = l
	return err
}

// Create adds a pool and returns it with its token (shown once).
func (s *Service) Create(ctx context.Context, p Pool) (Pool, string, error) {
	if err := validate(&p); err != nil {
		return p, "", err
	}
	token := newToken(p.ID)
	now := time.Now().UTC().Truncate(time.Microsecond)
	p.CreatedAt, p.UpdatedAt = now, now
	err := s.db.Tx(ctx, func(ctx context.Context) error {
		if err := s.spaces.Share(ctx, p.Space); err != nil {
			return err
		}
		_, err := s.db.Exec(ctx, `INSERT INTO worker_pools (id, name, space_id, labels, description, token_hash, drift_run_limit, created_at, updated_at) VALUES ($1,$2,$3,$4,$5,$6,$8,$7,$7)`,
			p.ID, p.Name, p.Space, labels.Encode(p.Labels), p.Description, hash(token), now.UnixNano(), p.DriftRunLimit)
		if db.IsUniqueViolation(err) {
			return errs.E(errs.Conflict, "worker pool %q already exists", p.ID)
		}
		if err != nil {
			return err
		}
		return s.Audit.Record(ctx, "worker_pool.create", "worker_pool", p.ID, p.Space, nil, view(p))
	})
	if err != nil {
		return p, "", err
	}
	return p, token, nil
}

// view is what the audit trail shows of a pool (never its token).
func view(p Pool) map[string]any {
	return map[string]any{"name": p.Name, "space": p.Space, "labels": p.Labels, "description": p.Description, "drift_run_limit": p.DriftRunLimit}
}

// Get returns one pool.
func (s *Service) Get(ctx context.Context, poolID string) (Pool, error) {
	p, err := scan(s.db.QueryRow(ctx, `SELECT `+cols+` FROM worker_pools WHERE id = $1`, poolID))
	if errors.Is(err, sql.ErrNoRows) {
		return p, errs.E(errs.NotFound, "worker pool %q not found", poolID)
	}
	return p, err
}

// lock returns a pool for a transaction that changes it after reading it:
// its row is locked until the transaction ends (see db.LockRow).
func (s *Service) lock(ctx context.Context, poolID string) (Pool, error) {
	if _, err := s.db.LockRow(ctx, "worker_pools", poolID); err != nil {
		return Pool{}, err
	}
	return s.Get(ctx, poolID)
}

// List returns the pools of a space ("" for all), by id.
func (s *Service) List(ctx context.Context, spaceID string) ([]Pool, error) {
	q, args := `SELECT `+cols+` FROM worker_pools ORDER BY id`, []any{}
	if spaceID != "" {
		q, args = `SELECT `+cols+` FROM worker_pools WHERE space_id = $1 ORDER BY id`, []any{spaceID}
	}
	return db.Collect(ctx, s.db, scan, q, args...)
}

// Update changes a pool's name, labels, description and drift run limit.
func (s *Service) Update(ctx context.Context, poolID string, fn func(*Pool) error) (Pool, error) {
	var p Pool
	err := s.db.Tx(ctx, func(ctx context.Context) error {
		var err error
		if p, err = s.lock(ctx, poolID); err != nil {
			return err
		}
		old := p
		if err := fn(&p); err != nil {
			return err
		}
		p.ID, p.Space = old.ID, old.Space
		if err := validate(&p); err != nil {
			return err
		}
		p.UpdatedAt = time.Now().UTC().Truncate(time.Microsecond)
		_, err = s.db.Exec(ctx, `UPDATE worker_pools SET name = $2, labels = $3, description = $4, updated_at = $5, drift_run_limit = $6 WHERE id = $1`,
			p.ID, p.Name, labels.Encode(p.Labels), p.Description, p.UpdatedAt.UnixNano(), p.DriftRunLimit)
		if err != nil {
			return err
		}
		return s.Audit.Record(ctx, "worker_pool.update", "worker_pool", p.ID, p.Space, view(old), view(p))
	})
	return p, err
}

// Delete removes a pool that no stack names. The pool's row is locked
// before the stacks naming it are counted, and a stack set to a pool
// shares that row (see db.LockRow): a stack set to the pool meanwhile is
// either counted, and the delete refused, or refused itself.
func (s *Service) Delete(ctx context.Context, poolID string) error {
	return s.db.Tx(ctx, func(ctx context.Context) error {
		old, err := s.lock(ctx, poolID)
		if err != nil {
			return err
		}
		var n int
		if err := s.db.QueryRow(ctx, `SELECT COUNT(*) FROM stacks WHERE worker_pool = $1`, poolID).Scan(&n); err != nil {
			return err
		}
		if n > 0 {
			return errs.E(errs.Conflict, "worker pool %q is used by %d stacks: move them to another pool first", poolID, n)
		}
		if _, err := s.db.Exec(ctx, `DELETE FROM workers WHERE pool_id = $1`, poolID); err != nil {
			return err
		}
		if _, err := s.db.Exec(ctx, `DELETE FROM worker_pools WHERE id = $1`, poolID); err != nil {
			return err
		}
		return s.Audit.Record(ctx, "worker_pool.delete", "worker_pool", poolID, old.Space, view(old), nil)
	})
}

// Reset gives a pool a new token and disconnects the workers registered
// with the old one: their worker tokens stop working at once (jobs they
// run finish with their own job tokens, or fail when they miss their
// heartbeats). It returns the new token (shown once).
func (s *Service) Reset(ctx context.Context, poolID string) (string, error) {
	token := newToken(poolID)
	err := s.db.Tx(ctx, func(ctx context.Context) error {
		p, err := s.lock(ctx, poolID)
		if err != nil {
			return err
		}
		if _, err := s.db.Exec(ctx, `UPDATE worker_pools SET token_hash = $2, updated_at = $3 WHERE id = $1`, poolID, hash(token), time.Now().UnixNano()); err != nil {
			return err
		}
		if _, err = s.db.Exec(ctx, `DELETE FROM workers WHERE pool_id = $1`, poolID); err != nil {
			return err
		}
		return s.Audit.Record(ctx, "worker_pool.reset", "worker_pool", poolID, p.Space, nil, map[string]any{"reset": true, "workers_disconnected": true})
	})
	return token, err
}

// Authenticate returns the pool a pool token belongs to. An error means
// the token could not be checked (the database did not answer).
func (s *Service) Authenticate(ctx context.Context, token string) (string, bool, error) {
	rest, ok := strings.CutPrefix(token, TokenPrefix)
	i := strings.LastIndexByte(rest, '_')
	if !ok || i <= 0 {
		return "", false, nil
	}
	var h string
	err := s.db.QueryRow(ctx, `SELECT token_hash FROM worker_pools WHERE id = $1`, rest[:i]).Scan(&h)
	if errors.Is(err, sql.ErrNoRows) {
		return "", false, nil
	}
	if err != nil {
		return "", false, fmt.Errorf("checking a pool token: %w", err)
	}
	if subtle.ConstantTimeCompare([]byte(h), []byte(hash(token))) != 1 {
		return "", false, nil
	}
	return rest[:i], true, nil
}

// Usable checks that a stack in spaceID may use a pool: the pool's space
// is the stack's or an ancestor it inherits from. "" (built-in) always is.
func (s *Service) Usable(ctx context.Context, poolID, spaceID string) error {
	if poolID == "" {
		return nil
	}
	p, err := s.Get(ctx, poolID)
	if errs.Is(err, errs.NotFound) {
		return errs.E(errs.Invalid, "worker pool %q does not exist", poolID)
	}
	if err != nil {
		return err
	}
	lin, err := s.spaces.Lineage(ctx, spaceID)
	if err != nil {
		return err
	}
	for _, sp := range lin {
		if sp.ID == p.Space {
			return nil
		}
	}
	return errs.E(errs.Invalid, "worker pool %q is in space %q, which space %q does not inherit from: a stack may use the pools of its space and of the ancestors it inherits from",
		poolID, p.Space, spaceID)
}

// SetPublicKey stores the pool's public key (from `gantry workerpool
// keygen`): from then on the pool's secret values are sealed to it when
// sent to its workers, and its workers must seal the workspaces they hand
// from plan to apply. An empty key turns sealing off.
func (s *Service) SetPublicKey(ctx context.Context, poolID, key string) error {
	key = strings.TrimSpace(key)
	if key != "" {
		if _, err := seal.ParsePublicKey(key); err != nil {
			return errs.E(errs.Invalid, "%v", err)
		}
	}
	return s.db.Tx(ctx, func(ctx context.Context) error {
		p, err := s.lock(ctx, poolID)
		if err != nil {
			return err
		}
		old, err := s.PublicKey(ctx, poolID)
		if err != nil {
			return err
		}
		if _, err := s.db.Exec(ctx, `UPDATE worker_pools SET public_key = $2, updated_at = $3 WHERE id = $1`, poolID, key, time.Now().UnixNano()); err != nil {
			return err
		}
		return s.Audit.Record(ctx, "worker_pool.set-key", "worker_pool", poolID, p.Space,
			map[string]any{"public_key": old}, map[string]any{"public_key": key})
	})
}

// PublicKey returns the pool's public key ("" when it has none, and for
// the built-in pool).
func (s *Service) PublicKey(ctx context.Context, poolID string) (string, error) {
	if poolID == "" {
		return "", nil
	}
	var key string
	err := s.db.QueryRow(ctx, `SELECT public_key FROM worker_pools WHERE id = $1`, poolID).Scan(&key)
	if errors.Is(err, sql.ErrNoRows) {
		return "", errs.E(errs.NotFound, "worker pool %q not found", poolID)
	}
	return key, err
}

// Worker statuses.
const (
	Idle    = "IDLE"
	Busy    = "BUSY"
	Drained = "DRAINED"
	Gone    = "GONE" // no sign of life within the worker timeout
)

// ReleaseTool is the key of a worker's tools under which it reports its
// own release (see workerapi.ToolGantry); workers of releases before it
// report none.
const ReleaseTool = "gantry"

// WorkerStatus is a registered worker as operators see it.
type WorkerStatus struct {
	ID          string
	Pool        string
	Name        string
	Status      string
	Labels      map[string]string
	Tools       map[string]string
	Concurrency int
	Features    []string // what it can do beyond protocol version 1
	Version     string   // its release, as it reported it (Tools[ReleaseTool]; "" if it did not)
	Jobs        []string // runs it holds
	Registered  time.Time
	LastSeen    time.Time
}

// Workers lists a pool's workers ("" for the built-in pool).
func (s *Service) Workers(ctx context.Context, poolID string) ([]WorkerStatus, error) {
	out, err := db.Collect(ctx, s.db, func(row db.Scanner) (WorkerStatus, error) {
		var w WorkerStatus
		var lbl, tools, feat string
		var drained bool
		var reg, seen int64
		if err := row.Scan(&w.ID, &w.Pool, &w.Name, &lbl, &tools, &w.Concurrency, &drained, &reg, &seen, &feat); err != nil {
			return WorkerStatus{}, err
		}
		_ = json.Unmarshal([]byte(lbl), &w.Labels)
		_ = json.Unmarshal([]byte(tools), &w.Tools)
		_ = json.Unmarshal([]byte(feat), &w.Features)
		w.Version = w.Tools[ReleaseTool]
		w.Registered, w.LastSeen = time.Unix(0, reg).UTC(), time.Unix(0, seen).UTC()
		if drained {
			w.Status = Drained
		}
		return w, nil
	}, `SELECT id, pool_id, name, labels, tools, concurrency, drained, registered_at, last_seen_at, features
		FROM workers WHERE pool_id = $1 ORDER BY id`, poolID)
	if err != nil {
		return nil, err
	}
	for i := range out {
		w := &out[i]
		jobs, err := s.db.Query(ctx, `SELECT id, heartbeat_at FROM runs WHERE worker_id = $1
			AND state IN ('PREPARING','INITIALIZING','PLANNING','PERFORMING','APPLYING') ORDER BY id`, w.ID)
		if err != nil {
			return nil, err
		}
		for jobs.Next() {
			var runID string
			var hb int64
			if err := jobs.Scan(&runID, &hb); err != nil {
				jobs.Close()
				return nil, err
			}
			w.Jobs = append(w.Jobs, runID)
			if t := time.Unix(0, hb).UTC(); t.After(w.LastSeen) {
				w.LastSeen = t
			}
		}
		jobs.Close()
		switch {
		case w.Status == Drained:
		case len(w.Jobs) > 0:
			w.Status = Busy
		case time.Since(w.LastSeen) > s.WorkerTimeout:
			w.Status = Gone
		default:
			w.Status = Idle
		}
	}
	return out, nil
}

// Connected counts the workers of a pool seen within the worker timeout
// and not drained, and that named every one of features at register (the
// claim's test, see run.Run.Needs): a pool without any leaves its runs
// (that need those features) waiting.
func (s *Service) Connected(ctx context.Context, poolID string, features ...string) (int, error) {
	q := `SELECT COUNT(*) FROM workers WHERE pool_id = $1 AND NOT drained AND last_seen_at > $2`
	args := []any{poolID, time.Now().Add(-s.WorkerTimeout).UnixNano()}
	for _, f := range features {
		// features is a JSON array of strings, as the claim reads it.
		args = append(args, `%"`+f+`"%`)
		q += fmt.Sprintf(" AND features LIKE $%d", len(args))
	}
	var n int
	err := s.db.QueryRow(ctx, q, args...).Scan(&n)
	return n, err
}

// PruneWorkers forgets the workers (of every pool, built-in included) not
// seen since before cutoff and holding no run, and returns how many.
func (s *Service) PruneWorkers(ctx context.Context, cutoff time.Time) (int, error) {
	res, err := s.db.Exec(ctx, `DELETE FROM workers WHERE last_seen_at < $1 AND NOT EXISTS
		(SELECT 1 FROM runs WHERE runs.worker_id = workers.id AND runs.state IN ('PREPARING','INITIALIZING','PLANNING','PERFORMING','APPLYING'))`,
		cutoff.UnixNano())
	if err != nil {
		return 0, err
	}
	k, _ := res.RowsAffected()
	return int(k), nil
}

// Drain stops a worker from claiming new jobs; the jobs it runs go on.
func (s *Service) Drain(ctx context.Context, poolID, workerID string) error {
	res, err := s.db.Exec(ctx, `UPDATE workers SET drained = TRUE WHERE id = $1 AND pool_id = $2`, workerID, poolID)
	if err != nil {
		return err
	}
	if k, _ := res.RowsAffected(); k == 0 {
		name := poolID
		if name == "" {
			name = "builtin"
		}
		return errs.E(errs.NotFound, "worker %q not found in pool %s", workerID, name)
	}
	return nil
}
