package run

import (
	"context"

	"github.com/gantry-iac/gantry/internal/audit"
)

// Auditor records audit events in the caller's transaction (package audit
// implements it).
type Auditor interface {
	Record(ctx context.Context, ev audit.Event) (audit.Event, error)
}

// audit records what a person (or API key) did to a run, in the
// transaction of the change: the event exists if and only if the change
// committed.
func (s *Service) audit(ctx context.Context, action string, r Run, before, after any) error {
	if s.Audit == nil {
		return nil
	}
	change, err := audit.NewChange(before, after)
	if err != nil {
		return err
	}
	_, err = s.Audit.Record(ctx, audit.Event{Action: "run." + action, SubjectType: "run", SubjectID: r.ID, Space: r.SpaceID, Change: change})
	return err
}

// stateChange is the before/after of a run's state for the audit trail.
func stateChange(state string) map[string]string { return map[string]string{"state": state} }
