// Package policy keeps Rego policies (Spacelift's types, inputs and rules),
// attaches them to stacks, evaluates them at the decision points of a run
// (../shared/design/RUNS.md) and keeps what every evaluation decided:
// receipts on runs and samples for simulate and replay.
package policy

import (
	"context"
	"database/sql"
	"errors"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"github.com/gantry-iac/gantry/internal/db"
	"github.com/gantry-iac/gantry/internal/errs"
	"github.com/gantry-iac/gantry/internal/events"
	"github.com/gantry-iac/gantry/internal/id"
	"github.com/gantry-iac/gantry/internal/labels"
	"github.com/gantry-iac/gantry/internal/notify"
	"github.com/gantry-iac/gantry/internal/policy/engine"
	"github.com/gantry-iac/gantry/internal/run"
	"github.com/gantry-iac/gantry/internal/space"
	"github.com/gantry-iac/gantry/internal/stack"
)

// MaxBody bounds a policy's Rego source.
const MaxBody = 256 << 10

// Policy is one Rego policy of a space.
type Policy struct {
	ID          string
	Name        string
	Space       string
	Type        string
	Body        string
	Engine      string // the syntax used: rego_v0 or rego_v1
	EngineSet   string // what the user asked for ("" = detect)
	Labels      []string
	Description string
	Version     int
	CreatedAt   time.Time
	UpdatedAt   time.Time
}

// Service keeps and evaluates policies.
type Service struct {
	db     *db.DB
	spaces *space.Service
	stacks *stack.Service
	runs   *run.Service
	notify *notify.Service
	hub    *events.Hub
	cache  *engine.Cache
	log    *slog.Logger

	// SampleLast keeps the newest N evaluations of every policy as samples
	// (besides those the policy asks for with `sample`); 0 keeps only those.
	SampleLast int
	// PublicURL is the server's address, for links in notification input.
	PublicURL string

	types typeCache
	// Audit, if set, records policy changes and reviews in their
	// transaction.
	Audit Auditor
	// Shared, if set, says whether other servers share the database (and
	// may change policies this one learns of late); while it says no, the
	// gates ask the policy-type cache rather than the database.
	Shared func() bool
	// RuntimeConfig, if set, says what a run of the stack would run with
	// now (the hooks and plain variables of the stack and its contexts),
	// for the runtime_config of a run no worker took yet; without it, the
	// stack's own.
	RuntimeConfig func(ctx context.Context, st stack.Stack) (run.RuntimeConfig, error)
	// Contexts, if set, lists the ids of the contexts that apply to the
	// stack, in the order runs apply them, for stack.contexts (the input's
	// own stack; not the stacks of TRIGGER input's stacks list); without
	// it, stack.contexts is empty.
	Contexts func(ctx context.Context, st stack.Stack) ([]string, error)
}

// NewService returns a policy service.
func NewService(d *db.DB, spaces *space.Service, stacks *stack.Service, runs *run.Service, n *notify.Service, hub *events.Hub, log *slog.Logger) *Service {
	return &Service{db: d, spaces: spaces, stacks: stacks, runs: runs, notify: n, hub: hub, cache: engine.NewCache(512), log: log, SampleLast: 10}
}

const cols = `id, name, space_id, type, body, engine, engine_set, labels, description, version, created_at, updated_at`

func scan(row interface{ Scan(...any) error }) (Policy, error) {
	var p Policy
	var lbl string
	var c, u int64
	if err := row.Scan(&p.ID, &p.Name, &p.Space, &p.Type, &p.Body, &p.Engine, &p.EngineSet, &lbl, &p.Description, &p.Version, &c, &u); err != nil {
		return p, err
	}
	var err error
	p.Labels, err = labels.Decode(lbl)
	p.CreatedAt, p.UpdatedAt = time.Unix(0, c).UTC(), time.Unix(0, u).UTC()
	return p, err
}

// Compile checks a policy's source and returns it compiled.
func (s *Service) Compile(p Policy) (*engine.Policy, error) {
	return s.cache.Compile(engine.Source{Name: p.ID + ".rego", Type: p.Type, Body: p.Body, Engine: p.EngineSet})
}

// validate checks a policy and fills defaults; it compiles the body.
func (s *Service) validate(p *Policy) error {
	if !id.ValidSlug(p.ID) {
		return errs.E(errs.Invalid, "policy id %q is not a valid slug (lower-case letters, digits and dashes, at most 63)", p.ID)
	}
	if p.Name == "" {
		p.Name = p.ID
	}
	if p.Space == "" {
		p.Space = space.Root
	}
	p.Type = strings.ToUpper(p.Type)
	switch {
	case !engine.ValidType(p.Type):
		return errs.E(errs.Invalid, "policy type must be PLAN, APPROVAL, TRIGGER, GIT_PUSH, NOTIFICATION or LOGIN, got %q", p.Type)
	case p.Type == engine.TypeLogin && p.Space != space.Root:
		// Sign-in evaluates the LOGIN policies of the root space only: one
		// elsewhere would be stored and never apply.
		return errs.E(errs.Invalid, "LOGIN policies live in the root space (they apply to every sign-in from there only), not in space %q", p.Space)
	case p.EngineSet != "" && p.EngineSet != engine.EngineV0 && p.EngineSet != engine.EngineV1:
		return errs.E(errs.Invalid, "engine must be %s or %s, got %q", engine.EngineV0, engine.EngineV1, p.EngineSet)
	case len(p.Name) > 255 || len(p.Description) > 4096:
		return errs.E(errs.Invalid, "policy name (255) or description (4096 bytes) too long")
	case strings.TrimSpace(p.Body) == "":
		return errs.E(errs.Invalid, "policy body is empty")
	case len(p.Body) > MaxBody:
		return errs.E(errs.TooLarge, "policy body larger than %d bytes", MaxBody)
	}
	l, err := labels.Normalize(p.Labels)
	if err != nil {
		return err
	}
	p.Labels = l
	compiled, err := s.Compile(*p)
	if err != nil {
		var ce *engine.CompileError
		if errors.As(err, &ce) {
			return errs.E(errs.Invalid, "policy does not compile: %s", ce.Error())
		}
		return err
	}
	p.Engine = compiled.Engine
	return nil
}

// Create adds a policy after compiling it.
func (s *Service) Create(ctx context.Context, p Policy) (Policy, error) {
	if err := s.validate(&p); err != nil {
		return p, err
	}
	now := time.Now().UTC().Truncate(time.Microsecond)
	p.CreatedAt, p.UpdatedAt, p.Version = now, now, 1
	err := s.db.Tx(ctx, func(ctx context.Context) error {
		if err := s.spaces.Share(ctx, p.Space); err != nil {
			return err
		}
		_, err := s.db.Exec(ctx, `INSERT INTO policies (`+cols+`) VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$11)`,
			p.ID, p.Name, p.Space, p.Type, p.Body, p.Engine, p.EngineSet, labels.Encode(p.Labels), p.Description, p.Version, now.UnixNano())
		if db.IsUniqueViolation(err) {
			return errs.E(errs.Conflict, "policy %q already exists", p.ID)
		}
		if err != nil {
			return err
		}
		if err := s.saveVersion(ctx, p); err != nil {
			return err
		}
		return s.auditPolicy(ctx, "create", nil, &p)
	})
	if err == nil {
		s.changed()
	}
	return p, err
}

func (s *Service) saveVersion(ctx context.Context, p Policy) error {
	_, err := s.db.Exec(ctx, `INSERT INTO policy_versions (policy_id, version, body, engine, created_at) VALUES ($1, $2, $3, $4, $5)`,
		p.ID, p.Version, p.Body, p.EngineSet, p.UpdatedAt.UnixNano())
	return err
}

// Get returns one policy.
func (s *Service) Get(ctx context.Context, policyID string) (Policy, error) {
	p, err := scan(s.db.QueryRow(ctx, `SELECT `+cols+` FROM policies WHERE id = $1`, policyID))
	if errors.Is(err, sql.ErrNoRows) {
		return p, errs.E(errs.NotFound, "policy %q not found", policyID)
	}
	return p, err
}

// lock returns a policy for a transaction that changes it after reading
// it: its row is locked until the transaction ends (see db.LockRow), so
// two updates get two versions, one after the other, and Attach (which
// shares the row) never attaches a policy being deleted.
func (s *Service) lock(ctx context.Context, policyID string) (Policy, error) {
	if _, err := s.db.LockRow(ctx, "policies", policyID); err != nil {
		return Policy{}, err
	}
	return s.Get(ctx, policyID)
}

// Version returns the body and engine of one version of a policy.
func (s *Service) Version(ctx context.Context, policyID string, version int) (Policy, error) {
	p, err := s.Get(ctx, policyID)
	if err != nil {
		return p, err
	}
	err = s.db.QueryRow(ctx, `SELECT body, engine FROM policy_versions WHERE policy_id = $1 AND version = $2`, policyID, version).Scan(&p.Body, &p.EngineSet)
	if errors.Is(err, sql.ErrNoRows) {
		return p, errs.E(errs.NotFound, "policy %q has no version %d", policyID, version)
	}
	p.Version = version
	return p, err
}

// Filter selects policies in List.
type Filter struct {
	Space  string
	Type   string
	Cursor string
	Limit  int
}

// List returns a page of policies by id, and the next cursor.
func (s *Service) List(ctx context.Context, f Filter) ([]Policy, string, error) {
	q := `SELECT ` + cols + ` FROM policies WHERE id > $1`
	args := []any{f.Cursor}
	if f.Space != "" {
		args = append(args, f.Space)
		q += ` AND space_id = $` + strconv.Itoa(len(args))
	}
	if f.Type != "" {
		if !engine.ValidType(strings.ToUpper(f.Type)) {
			return nil, "", errs.E(errs.Invalid, "type must be one of PLAN, APPROVAL, TRIGGER, GIT_PUSH, NOTIFICATION or LOGIN, got %q", f.Type)
		}
		args = append(args, strings.ToUpper(f.Type))
		q += ` AND type = $` + strconv.Itoa(len(args))
	}
	args = append(args, f.Limit+1)
	q += ` ORDER BY id LIMIT $` + strconv.Itoa(len(args))
	out, err := s.query(ctx, q, args...)
	if err != nil {
		return nil, "", err
	}
	next := ""
	if len(out) > f.Limit {
		out = out[:f.Limit]
		next = out[f.Limit-1].ID
	}
	return out, next, nil
}

func (s *Service) query(ctx context.Context, q string, args ...any) ([]Policy, error) {
	return db.Collect(ctx, s.db, scan, q, args...)
}

// Update changes a policy; a new body is compiled and becomes a new version.
func (s *Service) Update(ctx context.Context, policyID string, fn func(*Policy) error) (Policy, error) {
	var p Policy
	err := s.db.Tx(ctx, func(ctx context.Context) error {
		var err error
		if p, err = s.lock(ctx, policyID); err != nil {
			return err
		}
		old := p
		if err := fn(&p); err != nil {
			return err
		}
		p.ID, p.Space, p.Type = old.ID, old.Space, old.Type
		if err := s.validate(&p); err != nil {
			return err
		}
		p.UpdatedAt = time.Now().UTC().Truncate(time.Microsecond)
		if p.Body != old.Body || p.EngineSet != old.EngineSet {
			p.Version = old.Version + 1
			if err := s.saveVersion(ctx, p); err != nil {
				return err
			}
		}
		_, err = s.db.Exec(ctx, `UPDATE policies SET name = $2, body = $3, engine = $4, engine_set = $5, labels = $6, description = $7, version = $8, updated_at = $9 WHERE id = $1`,
			p.ID, p.Name, p.Body, p.Engine, p.EngineSet, labels.Encode(p.Labels), p.Description, p.Version, p.UpdatedAt.UnixNano())
		if err != nil {
			return err
		}
		return s.auditPolicy(ctx, "update", &old, &p)
	})
	if err == nil {
		s.changed()
	}
	return p, err
}

// Delete removes a policy with its attachments, versions and samples.
// Receipts on runs stay: they are history.
func (s *Service) Delete(ctx context.Context, policyID string) error {
	err := s.db.Tx(ctx, func(ctx context.Context) error {
		p, err := s.lock(ctx, policyID)
		if err != nil {
			return err
		}
		if _, err := s.db.Exec(ctx, `DELETE FROM policies WHERE id = $1`, policyID); err != nil {
			return err
		}
		return s.auditPolicy(ctx, "delete", &p, nil)
	})
	if err == nil {
		s.changed()
	}
	return err
}
