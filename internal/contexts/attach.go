package contexts

import (
	"context"
	"sort"
	"time"

	"github.com/gantry-iac/gantry/internal/db"
	"github.com/gantry-iac/gantry/internal/errs"
	"github.com/gantry-iac/gantry/internal/labels"
	"github.com/gantry-iac/gantry/internal/space"
	"github.com/gantry-iac/gantry/internal/stack"
)

// AutoattachPrefix marks a context label that attaches it by stack label
// (autoattach:* attaches it to every stack that sees its space).
const AutoattachPrefix = labels.AutoattachPrefix

// Explicit is the Via of a context attached by hand.
const Explicit = "explicit"

// MaxPriority bounds attachment priorities (either sign).
const MaxPriority = 1_000_000

// Attachment is a stack a context is attached to, and how.
type Attachment struct {
	ContextID string
	StackID   string
	Priority  int    // explicit attachments only
	Via       string // Explicit or the autoattach label
	// NotApplied says why runs of the stack do not use the context
	// although it is attached explicitly ("": they do): the stack's space
	// no longer sees the context's space (it moved, or a space on the way
	// stopped inheriting).
	NotApplied string
}

// Applied is a context that applies to a stack.
type Applied struct {
	Context  Context
	Priority int
	Via      string
}

// IsExplicit reports whether the context was attached by hand.
func (a Applied) IsExplicit() bool { return a.Via == Explicit }

// lineage returns the ids of the spaces a space sees, and the spaces.
func (s *Service) lineage(ctx context.Context, spaceID string) ([]string, []space.Space, error) {
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

// appliesVia says whether context c applies to stack st, whose space sees
// the spaces seen (its lineage), and how: Explicit (explicit: c is
// attached to st) or the matching autoattach label; "" when it does not.
// Runs (ForStack) and the listing of attachments (Attached) both decide by
// it.
func appliesVia(c Context, st stack.Stack, seen []string, explicit bool) string {
	if !labels.Has(seen, c.Space) {
		return ""
	}
	if explicit {
		return Explicit
	}
	return labels.AutoattachMatch(c.Labels, st.Labels)
}

// notApplied explains why runs of st do not use c, attached explicitly
// (see space.Service.NotApplied).
func (s *Service) notApplied(ctx context.Context, c Context, st stack.Stack, lin []space.Space) (string, error) {
	return s.spaces.NotApplied(ctx, lin, st.ID, st.Space, c.Space, "context")
}

// Attach attaches a context to a stack with a priority (lower wins), or
// changes the priority of an attachment. The context must be in the
// stack's space or in an ancestor the stack's space inherits from.
func (s *Service) Attach(ctx context.Context, contextID, stackID string, priority int) (Attachment, error) {
	if priority < -MaxPriority || priority > MaxPriority {
		return Attachment{}, errs.E(errs.Invalid, "priority must be from %d to %d", -MaxPriority, MaxPriority)
	}
	at := Attachment{ContextID: contextID, StackID: stackID, Priority: priority, Via: Explicit}
	err := s.db.Tx(ctx, func(ctx context.Context) error {
		// Both rows shared until the attachment is stored (see
		// db.ShareRow): neither is deleted from under it.
		if _, err := s.db.ShareRow(ctx, "contexts", contextID); err != nil {
			return err
		}
		c, err := s.Get(ctx, contextID)
		if err != nil {
			return err
		}
		st, err := s.stacks.Share(ctx, stackID)
		if err != nil {
			return err
		}
		ids, _, err := s.lineage(ctx, st.Space)
		if err != nil {
			return err
		}
		if !labels.Has(ids, c.Space) {
			return errs.E(errs.Invalid, "context %q is in space %q, which stack %q (space %q) does not inherit from: a stack may use contexts of its own space and of the ancestors it inherits from",
				c.ID, c.Space, st.ID, st.Space)
		}
		_, err = s.db.Exec(ctx, `INSERT INTO context_attachments (context_id, stack_id, priority, created_at) VALUES ($1, $2, $3, $4)
			ON CONFLICT (context_id, stack_id) DO UPDATE SET priority = excluded.priority`, c.ID, st.ID, priority, time.Now().UnixNano())
		if err != nil {
			return err
		}
		return s.Audit.Record(ctx, "context.attach", "context", c.ID, st.Space, nil, map[string]any{"stack": st.ID, "priority": priority})
	})
	return at, err
}

// Detach removes an explicit attachment.
func (s *Service) Detach(ctx context.Context, contextID, stackID string) error {
	return s.db.Tx(ctx, func(ctx context.Context) error {
		c, err := s.Get(ctx, contextID)
		if err != nil {
			return err
		}
		res, err := s.db.Exec(ctx, `DELETE FROM context_attachments WHERE context_id = $1 AND stack_id = $2`, contextID, stackID)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return errs.E(errs.NotFound, "context %q is not attached to stack %q explicitly", contextID, stackID)
		}
		return s.Audit.Record(ctx, "context.detach", "context", contextID, c.Space, map[string]any{"stack": stackID}, nil)
	})
}

// Attached returns the stacks a context is attached to, as runs decide
// (ForStack): explicit attachments (by priority, those that runs do not
// use listed with the reason) then stacks matching an autoattach label (by
// id).
func (s *Service) Attached(ctx context.Context, contextID string) ([]Attachment, error) {
	c, err := s.Get(ctx, contextID)
	if err != nil {
		return nil, err
	}
	out := []Attachment{}
	rows, err := s.db.Query(ctx, `SELECT stack_id, priority FROM context_attachments WHERE context_id = $1 ORDER BY priority, stack_id`, contextID)
	if err != nil {
		return nil, err
	}
	seen := map[string]bool{}
	for rows.Next() {
		at := Attachment{ContextID: contextID, Via: Explicit}
		if err := rows.Scan(&at.StackID, &at.Priority); err != nil {
			rows.Close()
			return nil, err
		}
		seen[at.StackID] = true
		out = append(out, at)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, err
	}
	for i, at := range out {
		st, err := s.stacks.Get(ctx, at.StackID)
		if err != nil {
			return nil, err
		}
		ids, lin, err := s.lineage(ctx, st.Space)
		if err != nil {
			return nil, err
		}
		if appliesVia(c, st, ids, true) == "" {
			if out[i].NotApplied, err = s.notApplied(ctx, c, st, lin); err != nil {
				return nil, err
			}
		}
	}
	if !labels.HasAutoattach(c.Labels) {
		return out, nil
	}
	for cursor := ""; ; {
		page, next, err := s.stacks.List(ctx, stack.Filter{Cursor: cursor, Limit: 500})
		if err != nil {
			return nil, err
		}
		for _, st := range page {
			if seen[st.ID] || labels.AutoattachMatch(c.Labels, st.Labels) == "" {
				continue
			}
			ids, _, err := s.lineage(ctx, st.Space)
			if err != nil {
				return nil, err
			}
			if via := appliesVia(c, st, ids, false); via != "" {
				out = append(out, Attachment{ContextID: contextID, StackID: st.ID, Via: via})
			}
		}
		if next == "" {
			return out, nil
		}
		cursor = next
	}
}

// ForStack returns the contexts that apply to a stack, in precedence
// order: explicit attachments by priority (lowest first, then id), then
// auto-attached contexts by id. Only contexts of the stack's space and of
// the ancestors it inherits from apply, so an attachment made before the
// stack moved, or before its space stopped inheriting, is left out.
func (s *Service) ForStack(ctx context.Context, st stack.Stack) ([]Applied, error) {
	ids, _, err := s.lineage(ctx, st.Space)
	if err != nil {
		return nil, err
	}
	in, args := db.InList(ids, 0)
	cands, err := s.query(ctx, `SELECT `+cols+` FROM contexts WHERE space_id IN (`+in+`) ORDER BY id`, args...)
	if err != nil || len(cands) == 0 {
		return []Applied{}, err
	}
	explicit := map[string]int{}
	rows, err := s.db.Query(ctx, `SELECT context_id, priority FROM context_attachments WHERE stack_id = $1`, st.ID)
	if err != nil {
		return nil, err
	}
	for rows.Next() {
		var cid string
		var prio int
		if err := rows.Scan(&cid, &prio); err != nil {
			rows.Close()
			return nil, err
		}
		explicit[cid] = prio
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, err
	}
	var manual, auto []Applied
	for _, c := range cands {
		prio, ok := explicit[c.ID]
		switch via := appliesVia(c, st, ids, ok); {
		case via == Explicit:
			manual = append(manual, Applied{Context: c, Priority: prio, Via: via})
		case via != "":
			auto = append(auto, Applied{Context: c, Via: via})
		}
	}
	sort.SliceStable(manual, func(i, j int) bool { return manual[i].Priority < manual[j].Priority })
	return append(append([]Applied{}, manual...), auto...), nil
}

// IDsForStack returns the ids of the contexts that apply to a stack, in
// ForStack's order (what policies see as stack.contexts).
func (s *Service) IDsForStack(ctx context.Context, st stack.Stack) ([]string, error) {
	applied, err := s.ForStack(ctx, st)
	if err != nil {
		return nil, err
	}
	ids := make([]string, len(applied))
	for i, a := range applied {
		ids[i] = a.Context.ID
	}
	return ids, nil
}
