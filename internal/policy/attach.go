package policy

import (
	"context"
	"sync"
	"time"

	"github.com/gantry-iac/gantry/internal/db"
	"github.com/gantry-iac/gantry/internal/errs"
	"github.com/gantry-iac/gantry/internal/labels"
	"github.com/gantry-iac/gantry/internal/policy/engine"
	"github.com/gantry-iac/gantry/internal/space"
	"github.com/gantry-iac/gantry/internal/stack"
)

// AutoattachPrefix marks a policy label that attaches it by stack label.
const AutoattachPrefix = labels.AutoattachPrefix

// attachable reports whether a policy of type t is attached to stacks
// (LOGIN and NOTIFICATION policies apply by space instead).
func attachable(t string) bool {
	return t != engine.TypeLogin && t != engine.TypeNotification
}

// lineageIDs returns the ids of the spaces a space sees.
func (s *Service) lineageIDs(ctx context.Context, spaceID string) ([]string, []space.Space, error) {
	lin, err := s.spaces.Lineage(ctx, spaceID)
	if err != nil {
		return nil, nil, err
	}
	ids := make([]string, len(lin))
	for i, sp := range lin {
		ids[i] = sp.ID
	}
	return ids, lin, nil
}

// Attach attaches a policy to a stack explicitly. The policy must be in the
// stack's space or in an ancestor the stack's space inherits from.
func (s *Service) Attach(ctx context.Context, policyID, stackID string) error {
	return s.db.Tx(ctx, func(ctx context.Context) error {
		// Both rows shared until the attachment is stored (see
		// db.ShareRow): neither is deleted from under it.
		if _, err := s.db.ShareRow(ctx, "policies", policyID); err != nil {
			return err
		}
		p, err := s.Get(ctx, policyID)
		if err != nil {
			return err
		}
		if !attachable(p.Type) {
			return errs.E(errs.Invalid, "%s policies are not attached to stacks: they apply to their space (and, for NOTIFICATION, the spaces that inherit from it)", p.Type)
		}
		st, err := s.stacks.Share(ctx, stackID)
		if err != nil {
			return err
		}
		ids, _, err := s.lineageIDs(ctx, st.Space)
		if err != nil {
			return err
		}
		if !labels.Has(ids, p.Space) {
			return errs.E(errs.Invalid, "policy %q is in space %q, which stack %q (space %q) does not inherit from: a stack may use policies of its own space and of the ancestors it inherits from",
				p.ID, p.Space, st.ID, st.Space)
		}
		_, err = s.db.Exec(ctx, `INSERT INTO policy_attachments (policy_id, stack_id, created_at) VALUES ($1, $2, $3)`, p.ID, st.ID, time.Now().UnixNano())
		if db.IsUniqueViolation(err) {
			return errs.E(errs.Conflict, "policy %q is already attached to stack %q", p.ID, st.ID)
		}
		if err != nil {
			return err
		}
		return s.auditAttach(ctx, p, st)
	})
}

// Detach removes an explicit attachment.
func (s *Service) Detach(ctx context.Context, policyID, stackID string) error {
	res, err := s.db.Exec(ctx, `DELETE FROM policy_attachments WHERE policy_id = $1 AND stack_id = $2`, policyID, stackID)
	if err != nil {
		return err
	}
	if k, _ := res.RowsAffected(); k == 0 {
		return errs.E(errs.NotFound, "policy %q is not attached to stack %q explicitly", policyID, stackID)
	}
	return nil
}

// Attachment is a stack a policy applies to, and why.
type Attachment struct {
	StackID string
	Via     string // "explicit" or the autoattach label
	// NotApplied says why runs of the stack do not use the policy
	// although it is attached explicitly ("": they do): the stack's space
	// no longer sees the policy's space (it moved, or a space on the way
	// stopped inheriting).
	NotApplied string
}

// Attached returns the stacks a policy is attached to, explicitly or by
// autoattach label, as runs decide (ForStack): the explicit attachments
// that runs do not use are listed with the reason.
func (s *Service) Attached(ctx context.Context, policyID string) ([]Attachment, error) {
	p, err := s.Get(ctx, policyID)
	if err != nil {
		return nil, err
	}
	out, err := db.Collect(ctx, s.db, func(row db.Scanner) (Attachment, error) {
		var st string
		err := row.Scan(&st)
		return Attachment{StackID: st, Via: "explicit"}, err
	}, `SELECT stack_id FROM policy_attachments WHERE policy_id = $1 ORDER BY stack_id`, policyID)
	if err != nil {
		return nil, err
	}
	for i, at := range out {
		st, err := s.stacks.Get(ctx, at.StackID)
		if err != nil {
			return nil, err
		}
		ids, lin, err := s.lineageIDs(ctx, st.Space)
		if err != nil {
			return nil, err
		}
		if appliesVia(p, st, ids, true) == "" {
			if out[i].NotApplied, err = s.notApplied(ctx, p, st, lin); err != nil {
				return nil, err
			}
		}
	}
	if !labels.HasAutoattach(p.Labels) {
		return out, nil
	}
	// Autoattach: every stack that sees the policy's space and matches.
	for cursor := ""; ; {
		page, next, err := s.stacks.List(ctx, stack.Filter{Cursor: cursor, Limit: 500})
		if err != nil {
			return nil, err
		}
		for _, st := range page {
			via := labels.AutoattachMatch(p.Labels, st.Labels)
			if via == "" {
				continue
			}
			ids, _, err := s.lineageIDs(ctx, st.Space)
			if err != nil {
				return nil, err
			}
			if appliesVia(p, st, ids, false) != "" && !hasStack(out, st.ID) {
				out = append(out, Attachment{StackID: st.ID, Via: via})
			}
		}
		if next == "" {
			return out, nil
		}
		cursor = next
	}
}

// appliesVia says whether policy p applies to stack st, whose space sees
// the spaces seen (its lineage), and how: "explicit" (explicit: p is
// attached to st) or the matching autoattach label; "" when it does not.
// Runs (ForStack) and the listing of attachments (Attached) both decide by
// it.
func appliesVia(p Policy, st stack.Stack, seen []string, explicit bool) string {
	if !attachable(p.Type) || !labels.Has(seen, p.Space) {
		return ""
	}
	if explicit {
		return "explicit"
	}
	return labels.AutoattachMatch(p.Labels, st.Labels)
}

// notApplied explains why runs of st do not use p, attached explicitly
// (see space.Service.NotApplied).
func (s *Service) notApplied(ctx context.Context, p Policy, st stack.Stack, lin []space.Space) (string, error) {
	return s.spaces.NotApplied(ctx, lin, st.ID, st.Space, p.Space, "policy")
}

func hasStack(list []Attachment, stackID string) bool {
	for _, a := range list {
		if a.StackID == stackID {
			return true
		}
	}
	return false
}

// ForStack returns the policies of type t that apply to a stack: attached
// explicitly or by autoattach label, from the stack's space or an ancestor
// it inherits from. Sorted by id.
func (s *Service) ForStack(ctx context.Context, st stack.Stack, t string) ([]Policy, error) {
	ids, _, err := s.lineageIDs(ctx, st.Space)
	if err != nil {
		return nil, err
	}
	cands, err := s.inSpaces(ctx, ids, t)
	if err != nil || len(cands) == 0 {
		return cands, err
	}
	explicit := map[string]bool{}
	rows, err := s.db.Query(ctx, `SELECT policy_id FROM policy_attachments WHERE stack_id = $1`, st.ID)
	if err != nil {
		return nil, err
	}
	for rows.Next() {
		var pid string
		if err := rows.Scan(&pid); err != nil {
			rows.Close()
			return nil, err
		}
		explicit[pid] = true
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, err
	}
	out := []Policy{}
	for _, p := range cands {
		if appliesVia(p, st, ids, explicit[p.ID]) != "" {
			out = append(out, p)
		}
	}
	return out, nil
}

// ForSpace returns the policies of type t that apply by space: for
// NOTIFICATION the space's and its inherited ancestors'; for LOGIN the root
// space's.
func (s *Service) ForSpace(ctx context.Context, spaceID, t string) ([]Policy, error) {
	if t == engine.TypeLogin {
		return s.inSpaces(ctx, []string{space.Root}, t)
	}
	ids, _, err := s.lineageIDs(ctx, spaceID)
	if err != nil {
		return nil, err
	}
	return s.inSpaces(ctx, ids, t)
}

func (s *Service) inSpaces(ctx context.Context, spaceIDs []string, t string) ([]Policy, error) {
	if len(spaceIDs) == 0 {
		return []Policy{}, nil
	}
	in, args := db.InList(spaceIDs, 1)
	return s.query(ctx, `SELECT `+cols+` FROM policies WHERE type = $1 AND space_id IN (`+in+`) ORDER BY id`, append([]any{t}, args...)...)
}

// PoliciesKey is the events key woken (on every replica) when a policy is
// created, changed or deleted.
const PoliciesKey = "policies"

// typeCache remembers which policy types exist, so that the hot paths of
// runs (every state change asks whether notification policies exist) cost
// no query while nothing changed. It is dropped when PoliciesKey is woken,
// here or on another replica, and after typeCacheTTL in case a wake-up was
// lost.
type typeCache struct {
	mu    sync.Mutex
	types map[string]bool
	valid <-chan struct{} // closed when a policy changes
	at    time.Time
}

const typeCacheTTL = 5 * time.Second

// anyOfType reports whether any policy of type t exists, from the cache:
// for notification events, where a miss in the moment a first policy is
// created elsewhere costs a notification, never a decision.
func (s *Service) anyOfType(ctx context.Context, t string) (bool, error) {
	c := &s.types
	c.mu.Lock()
	if c.types != nil && time.Since(c.at) < typeCacheTTL {
		select {
		case <-c.valid:
		default:
			ok := c.types[t]
			c.mu.Unlock()
			return ok, nil
		}
	}
	c.mu.Unlock()
	valid := s.hub.Chan(PoliciesKey) // before reading, so no change is missed
	// What is committed, even from inside a transaction (most callers are
	// in a run's), so that the answer can be kept.
	rows, err := s.db.Query(db.OutsideTx(ctx), `SELECT DISTINCT type FROM policies`)
	if err != nil {
		return false, err
	}
	defer rows.Close()
	types := map[string]bool{}
	for rows.Next() {
		var typ string
		if err := rows.Scan(&typ); err != nil {
			return false, err
		}
		types[typ] = true
	}
	if err := rows.Err(); err != nil {
		return false, err
	}
	c.mu.Lock()
	c.types, c.valid, c.at = types, valid, time.Now()
	c.mu.Unlock()
	return types[t], nil
}

// typeExists asks the database whether any policy of type t exists. The
// gates (plan, approval) and triggers use it rather than the cache: a
// policy created a moment ago on another replica must not be skipped. A
// server alone on its database (Shared says no) knows every change as it
// commits, and answers from the cache.
func (s *Service) typeExists(ctx context.Context, t string) (bool, error) {
	if s.Shared != nil && !s.Shared() {
		return s.anyOfType(ctx, t)
	}
	var n int
	err := s.db.QueryRow(ctx, `SELECT COUNT(*) FROM (SELECT 1 FROM policies WHERE type = $1 LIMIT 1) x`, t).Scan(&n)
	return n > 0, err
}

// changed wakes every replica's type cache after a policy change committed.
func (s *Service) changed() { s.hub.Notify(PoliciesKey) }
