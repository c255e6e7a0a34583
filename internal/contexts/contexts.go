// Package contexts keeps contexts: bundles of environment variables,
// mounted files and hooks that live in a space and are attached to stacks,
// with a priority or by an autoattach:<label> label, as in Spacelift. It
// also computes a stack's effective environment: the stack's own values
// merged with those of the contexts that apply to it.
//
// (The package is not named context, so as not to shadow the standard
// library.)
package contexts

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"strconv"
	"strings"
	"time"

	"github.com/gantry-iac/gantry/internal/audit"
	"github.com/gantry-iac/gantry/internal/db"
	"github.com/gantry-iac/gantry/internal/errs"
	"github.com/gantry-iac/gantry/internal/id"
	"github.com/gantry-iac/gantry/internal/labels"
	"github.com/gantry-iac/gantry/internal/secrets"
	"github.com/gantry-iac/gantry/internal/space"
	"github.com/gantry-iac/gantry/internal/stack"
)

// Context is a bundle of configuration of a space.
type Context struct {
	ID          string
	Name        string
	Space       string
	Labels      []string
	Description string
	Hooks       Hooks
	CreatedAt   time.Time
	UpdatedAt   time.Time
}

// Service stores contexts, their variables, files, hooks and attachments.
type Service struct {
	db     *db.DB
	box    *secrets.Box
	spaces *space.Service
	stacks *stack.Service
	// Audit records every change in its transaction.
	Audit audit.Hook
}

// view is what the audit trail shows of a context (its variables and
// files are recorded by name and path only).
func view(c Context) map[string]any {
	return map[string]any{"name": c.Name, "space": c.Space, "labels": c.Labels, "description": c.Description, "hooks": c.Hooks}
}

// NewService returns a context service; box seals secret values and files.
func NewService(d *db.DB, box *secrets.Box, spaces *space.Service, stacks *stack.Service) *Service {
	return &Service{db: d, box: box, spaces: spaces, stacks: stacks}
}

const cols = `id, name, space_id, labels, description, hooks, created_at, updated_at`

func scan(row interface{ Scan(...any) error }) (Context, error) {
	var c Context
	var lbl, hooks string
	var cr, up int64
	if err := row.Scan(&c.ID, &c.Name, &c.Space, &lbl, &c.Description, &hooks, &cr, &up); err != nil {
		return c, err
	}
	var err error
	if c.Labels, err = labels.Decode(lbl); err != nil {
		return c, err
	}
	if err := json.Unmarshal([]byte(hooks), &c.Hooks); err != nil {
		return c, err
	}
	c.CreatedAt, c.UpdatedAt = time.Unix(0, cr).UTC(), time.Unix(0, up).UTC()
	return c, nil
}

func validate(c *Context) error {
	if !id.ValidSlug(c.ID) {
		return errs.E(errs.Invalid, "context id %q is not a valid slug (lower-case letters, digits and dashes, at most 63)", c.ID)
	}
	if c.Name == "" {
		c.Name = c.ID
	}
	if c.Space == "" {
		c.Space = space.Root
	}
	if len(c.Name) > 255 || len(c.Description) > 4096 {
		return errs.E(errs.Invalid, "context name (255) or description (4096 bytes) too long")
	}
	if err := c.Hooks.validate(); err != nil {
		return err
	}
	l, err := labels.Normalize(c.Labels)
	c.Labels = l
	return err
}

func hooksJSON(h Hooks) string {
	b, _ := json.Marshal(h)
	return string(b)
}

// Create adds a context.
func (s *Service) Create(ctx context.Context, c Context) (Context, error) {
	if err := validate(&c); err != nil {
		return c, err
	}
	now := time.Now().UTC().Truncate(time.Microsecond)
	c.CreatedAt, c.UpdatedAt = now, now
	err := s.db.Tx(ctx, func(ctx context.Context) error {
		if err := s.spaces.Share(ctx, c.Space); err != nil {
			return err
		}
		_, err := s.db.Exec(ctx, `INSERT INTO contexts (`+cols+`) VALUES ($1, $2, $3, $4, $5, $6, $7, $7)`,
			c.ID, c.Name, c.Space, labels.Encode(c.Labels), c.Description, hooksJSON(c.Hooks), now.UnixNano())
		if db.IsUniqueViolation(err) {
			return errs.E(errs.Conflict, "context %q already exists", c.ID)
		}
		if err != nil {
			return err
		}
		return s.Audit.Record(ctx, "context.create", "context", c.ID, c.Space, nil, view(c))
	})
	return c, err
}

// Get returns one context.
func (s *Service) Get(ctx context.Context, contextID string) (Context, error) {
	c, err := scan(s.db.QueryRow(ctx, `SELECT `+cols+` FROM contexts WHERE id = $1`, contextID))
	if errors.Is(err, sql.ErrNoRows) {
		return c, errs.E(errs.NotFound, "context %q not found", contextID)
	}
	return c, err
}

// lock returns a context for a transaction that changes it, or its
// variables, files or attachments, after reading them: its row is locked
// until the transaction ends (see db.LockRow), so such changes happen one
// at a time, and Attach (which shares the row) never attaches a context
// being deleted.
func (s *Service) lock(ctx context.Context, contextID string) (Context, error) {
	if _, err := s.db.LockRow(ctx, "contexts", contextID); err != nil {
		return Context{}, err
	}
	return s.Get(ctx, contextID)
}

// Filter selects contexts in List.
type Filter struct {
	Space  string
	Cursor string
	Limit  int
}

// List returns a page of contexts ordered by id, and the next cursor.
func (s *Service) List(ctx context.Context, f Filter) ([]Context, string, error) {
	if f.Limit <= 0 {
		f.Limit = 50
	}
	q := `SELECT ` + cols + ` FROM contexts WHERE id > $1`
	args := []any{f.Cursor}
	if f.Space != "" {
		args = append(args, f.Space)
		q += ` AND space_id = $` + strconv.Itoa(len(args))
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

func (s *Service) query(ctx context.Context, q string, args ...any) ([]Context, error) {
	return db.Collect(ctx, s.db, scan, q, args...)
}

// Update changes a context with fn; its id and space cannot change (the
// space decides which stacks may use it).
func (s *Service) Update(ctx context.Context, contextID string, fn func(*Context) error) (Context, error) {
	var c Context
	err := s.db.Tx(ctx, func(ctx context.Context) error {
		var err error
		if c, err = s.lock(ctx, contextID); err != nil {
			return err
		}
		sp, before := c.Space, view(c)
		if err := fn(&c); err != nil {
			return err
		}
		c.ID, c.Space = contextID, sp
		if err := validate(&c); err != nil {
			return err
		}
		c.UpdatedAt = time.Now().UTC().Truncate(time.Microsecond)
		_, err = s.db.Exec(ctx, `UPDATE contexts SET name = $2, labels = $3, description = $4, hooks = $5, updated_at = $6 WHERE id = $1`,
			c.ID, c.Name, labels.Encode(c.Labels), c.Description, hooksJSON(c.Hooks), c.UpdatedAt.UnixNano())
		if err != nil {
			return err
		}
		return s.Audit.Record(ctx, "context.update", "context", c.ID, c.Space, before, view(c))
	})
	return c, err
}

// AddHook appends a command to one phase of a context's hooks.
func (s *Service) AddHook(ctx context.Context, contextID, phase, command string) (Context, error) {
	return s.Update(ctx, contextID, func(c *Context) error {
		list := c.Hooks.Phase(phase)
		if list == nil {
			return errs.E(errs.Invalid, "unknown hook phase %q: want one of %s", phase, strings.Join(Phases, ", "))
		}
		*list = append(*list, command)
		return nil
	})
}

// Delete removes a context with its variables, files and attachments.
func (s *Service) Delete(ctx context.Context, contextID string) error {
	return s.db.Tx(ctx, func(ctx context.Context) error {
		c, err := s.lock(ctx, contextID)
		if err != nil {
			return err
		}
		if _, err := s.db.Exec(ctx, `DELETE FROM contexts WHERE id = $1`, contextID); err != nil {
			return err
		}
		return s.Audit.Record(ctx, "context.delete", "context", c.ID, c.Space, view(c), nil)
	})
}
