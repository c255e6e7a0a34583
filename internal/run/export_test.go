package run

import "context"

// Step is a change for tests of transitions.
type Step struct {
	To, Actor, Reason string
	Sets              []string
	Args              []any
}

// TransitionsForTest moves a run through steps as the job steps do.
func (s *Service) TransitionsForTest(ctx context.Context, runID string, steps ...Step) (Run, error) {
	var r Run
	err := s.tx(ctx, func(ctx context.Context, n *notes) error {
		var err error
		if r, err = s.Get(ctx, runID); err != nil {
			return err
		}
		cs := make([]change, len(steps))
		for i, st := range steps {
			cs[i] = change{to: st.To, actor: st.Actor, reason: st.Reason, sets: st.Sets, args: st.Args}
		}
		return s.transitions(ctx, n, &r, cs...)
	})
	return r, err
}
