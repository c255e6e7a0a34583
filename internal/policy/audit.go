package policy

import (
	"context"

	"github.com/gantry-iac/gantry/internal/audit"
	"github.com/gantry-iac/gantry/internal/stack"
)

// Auditor records audit events in the caller's transaction.
type Auditor interface {
	Record(ctx context.Context, ev audit.Event) (audit.Event, error)
}

// auditPolicy records a change of a policy in the transaction of the
// change: metadata and the body's version, not the body itself (it can be
// long; the version history keeps every body).
func (s *Service) auditPolicy(ctx context.Context, action string, before, after *Policy) error {
	if s.Audit == nil {
		return nil
	}
	view := func(p *Policy) any {
		if p == nil {
			return nil
		}
		return map[string]any{"name": p.Name, "type": p.Type, "space": p.Space, "labels": p.Labels, "version": p.Version, "engine": p.Engine}
	}
	change, err := audit.NewChange(view(before), view(after))
	if err != nil {
		return err
	}
	subject := after
	if subject == nil {
		subject = before
	}
	_, err = s.Audit.Record(ctx, audit.Event{Action: "policy." + action, SubjectType: "policy", SubjectID: subject.ID, Space: subject.Space, Change: change})
	return err
}

// auditAttach records an explicit attachment in its transaction, in the
// stack's space (as context.attach): which stack, and the policy's space.
func (s *Service) auditAttach(ctx context.Context, p Policy, st stack.Stack) error {
	if s.Audit == nil {
		return nil
	}
	change, err := audit.NewChange(nil, map[string]any{"stack": st.ID, "policy_space": p.Space})
	if err != nil {
		return err
	}
	_, err = s.Audit.Record(ctx, audit.Event{Action: "policy.attach", SubjectType: "policy", SubjectID: p.ID, Space: st.Space, Change: change})
	return err
}
