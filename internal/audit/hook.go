package audit

import "context"

// Hook records a change of a domain object in the caller's transaction:
// action ("stack.create"), the subject, its space, and views of it before
// and after (nil when it did not exist; secrets are redacted by
// NewChange, but pass views without them). Domain services hold one; nil
// records nothing, so services work without an audit trail (tests).
type Hook func(ctx context.Context, action, subjectType, subjectID, space string, before, after any) error

// Record calls h when it is set.
func (h Hook) Record(ctx context.Context, action, subjectType, subjectID, space string, before, after any) error {
	if h == nil {
		return nil
	}
	return h(ctx, action, subjectType, subjectID, space, before, after)
}

// Hook returns the hook that records into this trail.
func (s *Service) Hook() Hook {
	return func(ctx context.Context, action, subjectType, subjectID, space string, before, after any) error {
		change, err := NewChange(before, after)
		if err != nil {
			return err
		}
		_, err = s.Record(ctx, Event{Action: action, SubjectType: subjectType, SubjectID: subjectID, Space: space, Change: change})
		return err
	}
}
