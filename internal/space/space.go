// Package space keeps the tree of spaces that hold stacks and everything
// else. The space `root` always exists.
package space

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/gantry-iac/gantry/internal/audit"
	"github.com/gantry-iac/gantry/internal/db"
	"github.com/gantry-iac/gantry/internal/errs"
	"github.com/gantry-iac/gantry/internal/id"
	"github.com/gantry-iac/gantry/internal/labels"
)

// Root is the id of the root space.
const Root = "root"

// Space is a node of the tree.
type Space struct {
	ID          string
	Name        string
	Parent      string // empty for root
	Inherit     bool
	Labels      []string
	Description string
	CreatedAt   time.Time
	UpdatedAt   time.Time
}

// Service stores spaces. Audit records every change in its transaction.
type Service struct {
	db    *db.DB
	Audit audit.Hook
}

// NewService returns a space service.
func NewService(d *db.DB) *Service { return &Service{db: d} }

const cols = `id, name, COALESCE(parent_id, ''), inherit, labels, description, created_at, updated_at`

func scan(row interface{ Scan(...any) error }) (Space, error) {
	var s Space
	var lbl string
	var c, u int64
	if err := row.Scan(&s.ID, &s.Name, &s.Parent, &s.Inherit, &lbl, &s.Description, &c, &u); err != nil {
		return s, err
	}
	l, err := labels.Decode(lbl)
	s.Labels, s.CreatedAt, s.UpdatedAt = l, time.Unix(0, c).UTC(), time.Unix(0, u).UTC()
	return s, err
}

// EnsureRoot creates the root space if it does not exist.
func (s *Service) EnsureRoot(ctx context.Context) error {
	now := time.Now().UnixNano()
	_, err := s.db.Exec(ctx, `INSERT INTO spaces (id, name, parent_id, inherit, labels, description, created_at, updated_at)
		VALUES ('root', 'root', NULL, FALSE, '[]', 'The root space.', $1, $1) ON CONFLICT (id) DO NOTHING`, now)
	return err
}

func validate(sp *Space) error {
	if !id.ValidSlug(sp.ID) {
		return errs.E(errs.Invalid, "space id %q is not a valid slug (lower-case letters, digits and dashes, at most 63)", sp.ID)
	}
	if sp.Name == "" {
		sp.Name = sp.ID
	}
	if len(sp.Name) > 255 || len(sp.Description) > 4096 {
		return errs.E(errs.Invalid, "space name (255) or description (4096 bytes) too long")
	}
	l, err := labels.Normalize(sp.Labels)
	sp.Labels = l
	return err
}

// Create adds a space under its parent (root by default).
func (s *Service) Create(ctx context.Context, sp Space) (Space, error) {
	if sp.Parent == "" {
		sp.Parent = Root
	}
	if err := validate(&sp); err != nil {
		return sp, err
	}
	if sp.ID == Root {
		return sp, errs.E(errs.Conflict, "space root already exists")
	}
	now := time.Now().UTC().Truncate(time.Microsecond)
	sp.CreatedAt, sp.UpdatedAt = now, now
	err := s.db.Tx(ctx, func(ctx context.Context) error {
		if ok, err := s.db.ShareRow(ctx, "spaces", sp.Parent); err != nil || !ok {
			if err == nil {
				err = errs.E(errs.Invalid, "parent space %q does not exist", sp.Parent)
			}
			return err
		}
		_, err := s.db.Exec(ctx, `INSERT INTO spaces (id, name, parent_id, inherit, labels, description, created_at, updated_at)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $7)`, sp.ID, sp.Name, sp.Parent, sp.Inherit, labels.Encode(sp.Labels), sp.Description, now.UnixNano())
		if db.IsUniqueViolation(err) {
			return errs.E(errs.Conflict, "space %q already exists", sp.ID)
		}
		if err != nil {
			return err
		}
		return s.Audit.Record(ctx, "space.create", "space", sp.ID, sp.ID, nil, view(sp))
	})
	return sp, err
}

// Share checks that a space exists for a transaction that adds something
// to it, and keeps it from being deleted until that transaction ends (its
// row shared, see db.ShareRow; Delete locks it). A missing space is
// invalid input.
func (s *Service) Share(ctx context.Context, spaceID string) error {
	ok, err := s.db.ShareRow(ctx, "spaces", spaceID)
	if err == nil && !ok {
		err = errs.E(errs.Invalid, "space %q does not exist", spaceID)
	}
	return err
}

// Get returns one space.
func (s *Service) Get(ctx context.Context, spaceID string) (Space, error) {
	sp, err := scan(s.db.QueryRow(ctx, `SELECT `+cols+` FROM spaces WHERE id = $1`, spaceID))
	if errors.Is(err, sql.ErrNoRows) {
		return sp, errs.E(errs.NotFound, "space %q not found", spaceID)
	}
	return sp, err
}

// List returns up to limit spaces with ids after cursor, and the next
// cursor: every space, or with parent set only its children.
func (s *Service) List(ctx context.Context, parent, cursor string, limit int) ([]Space, string, error) {
	q, args := `SELECT `+cols+` FROM spaces WHERE id > $1`, []any{cursor}
	if parent != "" {
		q, args = q+` AND parent_id = $2`, append(args, parent)
	}
	args = append(args, limit+1)
	out, err := db.Collect(ctx, s.db, scan, q+` ORDER BY id LIMIT $`+strconv.Itoa(len(args)), args...)
	if err != nil {
		return nil, "", err
	}
	next := ""
	if len(out) > limit {
		out = out[:limit]
		next = out[limit-1].ID
	}
	return out, next, nil
}

// Update changes a space with fn, which must not change its id or parent.
// The space's row is locked first (see db.LockRow): two updates at once
// apply one after the other, neither undoing the other.
func (s *Service) Update(ctx context.Context, spaceID string, fn func(*Space) error) (Space, error) {
	var sp Space
	err := s.db.Tx(ctx, func(ctx context.Context) error {
		var err error
		if _, err = s.db.LockRow(ctx, "spaces", spaceID); err != nil {
			return err
		}
		if sp, err = s.Get(ctx, spaceID); err != nil {
			return err
		}
		before := view(sp)
		if err := fn(&sp); err != nil {
			return err
		}
		sp.ID = spaceID
		if err := validate(&sp); err != nil {
			return err
		}
		sp.UpdatedAt = time.Now().UTC().Truncate(time.Microsecond)
		_, err = s.db.Exec(ctx, `UPDATE spaces SET name=$2, inherit=$3, labels=$4, description=$5, updated_at=$6 WHERE id=$1`,
			sp.ID, sp.Name, sp.Inherit, labels.Encode(sp.Labels), sp.Description, sp.UpdatedAt.UnixNano())
		if err != nil {
			return err
		}
		return s.Audit.Record(ctx, "space.update", "space", sp.ID, sp.ID, before, view(sp))
	})
	return sp, err
}

// Delete removes an empty space. Root and spaces holding anything cannot be
// deleted. The space's notification inbox items and deliveries go with it.
//
// The space's row is locked before what it holds is counted, and whatever
// adds something to a space (a child space, stack, policy, pool, context,
// integration, role binding, notification endpoint) shares that row first
// (Share, db.ShareRow): done at the same time, either the addition is
// counted (an endpoint: deleted with the space) and the delete refused, or
// the space is gone and the addition refused.
func (s *Service) Delete(ctx context.Context, spaceID string) error {
	if spaceID == Root {
		return errs.E(errs.Conflict, "the root space cannot be deleted")
	}
	return s.db.Tx(ctx, func(ctx context.Context) error {
		if ok, err := s.db.LockRow(ctx, "spaces", spaceID); err != nil || !ok {
			if err == nil {
				err = errs.E(errs.NotFound, "space %q not found", spaceID)
			}
			return err
		}
		old, err := s.Get(ctx, spaceID)
		if err != nil {
			return err
		}
		var held []string
		for _, q := range []struct{ what, sql string }{
			{"child spaces", `SELECT COUNT(*) FROM spaces WHERE parent_id = $1`},
			{"stacks", `SELECT COUNT(*) FROM stacks WHERE space_id = $1`},
			{"policies", `SELECT COUNT(*) FROM policies WHERE space_id = $1`},
			{"worker pools", `SELECT COUNT(*) FROM worker_pools WHERE space_id = $1`},
			{"contexts", `SELECT COUNT(*) FROM contexts WHERE space_id = $1`},
			{"integrations", `SELECT COUNT(*) FROM integrations WHERE space_id = $1`},
			// A binding left behind would apply to a later space of the
			// same id.
			{"role bindings", `SELECT COUNT(*) FROM role_bindings WHERE space_id = $1`},
		} {
			var n int
			if err := s.db.QueryRow(ctx, q.sql, spaceID).Scan(&n); err != nil {
				return err
			}
			if n > 0 {
				held = append(held, q.what)
			}
		}
		if len(held) > 0 {
			return errs.E(errs.Conflict, "space %q is not empty: it holds %s", spaceID, strings.Join(held, ", "))
		}
		// The space's notifications (inbox items, deliveries and, by
		// cascade, their attempts) name it without a foreign key: left
		// behind, they would show in a later space of the same id, to
		// whoever may read that one. They go with the space.
		for _, q := range []string{
			`DELETE FROM notify_inbox WHERE space_id = $1`,
			`DELETE FROM notify_deliveries WHERE space_id = $1`,
		} {
			if _, err := s.db.Exec(ctx, q, spaceID); err != nil {
				return err
			}
		}
		if _, err := s.db.Exec(ctx, `DELETE FROM spaces WHERE id = $1`, spaceID); err != nil {
			return err
		}
		return s.Audit.Record(ctx, "space.delete", "space", spaceID, spaceID, view(old), nil)
	})
}

// view is what the audit trail shows of a space.
func view(sp Space) map[string]any {
	return map[string]any{"name": sp.Name, "parent": sp.Parent, "inherit": sp.Inherit, "labels": sp.Labels, "description": sp.Description}
}

// Lineage returns the spaces whose policies, contexts and integrations a
// space sees: itself, then its parent if it inherits, then the parent's
// parent if the parent inherits too, and so on.
func (s *Service) Lineage(ctx context.Context, spaceID string) ([]Space, error) {
	var out []Space
	for next := spaceID; next != ""; {
		sp, err := s.Get(ctx, next)
		if err != nil {
			return nil, err
		}
		out = append(out, sp)
		if !sp.Inherit || len(out) > 64 {
			break
		}
		next = sp.Parent
	}
	return out, nil
}

// NotApplied explains why runs of a stack (stackID, in space stackSpace,
// whose space sees the spaces lin: Lineage's answer) do not use a kind of
// thing ("policy", "context", "integration") of space want attached to it
// explicitly: lin stops at a space that does not inherit from its parent,
// want being further up, or want is not above the stack's space at all
// (the stack moved). Listings of attachments show it.
func (s *Service) NotApplied(ctx context.Context, lin []Space, stackID, stackSpace, want, kind string) (string, error) {
	cut, above, err := s.CutOff(ctx, lin, want)
	if err != nil {
		return "", err
	}
	if above {
		plural := kind + "s"
		if p, ok := strings.CutSuffix(kind, "y"); ok {
			plural = p + "ies"
		}
		return fmt.Sprintf("not applied: space %q does not inherit from its parent %q, so stack %q (space %q) does not see the %s of space %q",
			cut.ID, cut.Parent, stackID, stackSpace, plural, want), nil
	}
	return fmt.Sprintf("not applied: stack %q is in space %q, which is not under the %s's space %q", stackID, stackSpace, kind, want), nil
}

// CutOff says why a lineage (Lineage's answer) does not see space want:
// it returns the last space of lin, which does not inherit from its
// parent, and true when want is that parent or further up; false when
// want is not above lin's spaces at all (it is in another branch).
func (s *Service) CutOff(ctx context.Context, lin []Space, want string) (Space, bool, error) {
	n := len(lin)
	if n == 0 || lin[n-1].Inherit || lin[n-1].Parent == "" {
		return Space{}, false, nil
	}
	for id, hops := lin[n-1].Parent, 0; id != "" && hops <= 64; hops++ {
		if id == want {
			return lin[n-1], true, nil
		}
		sp, err := s.Get(ctx, id)
		if err != nil {
			return Space{}, false, err
		}
		id = sp.Parent
	}
	return Space{}, false, nil
}
