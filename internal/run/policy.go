package run

import (
	"context"
	"strings"
	"time"

	"github.com/gantry-iac/gantry/internal/errs"
)

// Outcomes of the policies consulted at a decision point.
const (
	OutcomeNone      = ""          // no policy of that kind applies
	OutcomeApprove   = "approve"   // approval: every approval policy approves
	OutcomeReject    = "reject"    // approval: a policy rejects
	OutcomeUndecided = "undecided" // approval: waits for reviews
	OutcomeAllow     = "allow"     // plan: nothing to say
	OutcomeDeny      = "deny"      // plan: the run fails
	OutcomeWarn      = "warn"      // plan: a person must look (forces UNCONFIRMED)
)

// Verdict is what the policies decided at one point of a run's life.
type Verdict struct {
	Outcome  string
	Messages []string
	// Record stores what the evaluation leaves on the run (receipts, flags);
	// it runs inside the transaction that applies the verdict, so a run
	// never changes state without its receipts.
	Record func(ctx context.Context, runID string) error
}

func (v Verdict) record(ctx context.Context, runID string) error {
	if v.Record == nil {
		return nil
	}
	return v.Record(ctx, runID)
}

// Policies is how the run lifecycle consults policies (package policy
// implements it). Evaluations run outside transactions; their verdicts are
// applied inside one.
type Policies interface {
	// Approval evaluates the approval policies of the run's stack for a run
	// that is about to wait in stage (QUEUED, UNCONFIRMED or FINISHED for a
	// proposed run whose plan drew warnings).
	Approval(ctx context.Context, r Run, stage string) (Verdict, error)
	// NeedsPlan reports whether something must read the plan JSON before
	// the run may go on (plan policies are attached).
	NeedsPlan(ctx context.Context, r Run) (bool, error)
	// Plan evaluates the plan policies on the run's uploaded plan JSON.
	Plan(ctx context.Context, r Run) (Verdict, error)
	// Changed is called inside the transaction of every state change; it
	// returns the events keys to wake once that transaction committed. seq
	// is the change's number in the run's timeline (Transition.Seq).
	Changed(ctx context.Context, r Run, from string, at time.Time, seq int) ([]string, error)
}

func messages(prefix string, msgs []string) string {
	if len(msgs) == 0 {
		return prefix
	}
	return prefix + ": " + strings.Join(msgs, "; ")
}

// applyApproval moves a run that is about to wait in stage (its current
// state) according to an approval verdict: on to PENDING_REVIEW, to FAILED,
// or nowhere.
func (s *Service) applyApproval(ctx context.Context, n *notes, r *Run, stage string, v Verdict) error {
	if err := v.record(ctx, r.ID); err != nil {
		return err
	}
	switch v.Outcome {
	case OutcomeReject:
		return s.transition(ctx, n, r, change{to: Failed, actor: "policy", reason: messages("rejected by approval policy", v.Messages)})
	case OutcomeUndecided:
		if err := s.transition(ctx, n, r, change{to: PendingReview, actor: "policy", reason: messages("waiting for review", v.Messages),
			sets: []string{"review_from = ?"}, args: []any{stage}}); err != nil {
			return err
		}
		r.ReviewFrom = stage
	}
	return nil
}

// ReviewOutcome applies an approval verdict made after a review to a run
// that waits in PENDING_REVIEW: approve sends it back to where it waited,
// reject fails it, undecided leaves it. For runs that are QUEUED or
// UNCONFIRMED (reviewed before anything asked), only a reject acts.
//
// seen is the state the run was in when the verdict was made: if it
// changed since (a confirm, a claim, another review), ReviewOutcome answers
// ErrStaleReview and the caller evaluates again.
func (s *Service) ReviewOutcome(ctx context.Context, runID, actor, seen string, v Verdict) (Run, error) {
	var r Run
	err := s.tx(ctx, func(ctx context.Context, n *notes) error {
		var err error
		if r, err = s.Get(ctx, runID); err != nil {
			return err
		}
		if r.State != seen {
			return ErrStaleReview
		}
		if Terminal(r.State) {
			return nil
		}
		if err := v.record(ctx, r.ID); err != nil {
			return err
		}
		switch {
		case v.Outcome == OutcomeReject && (r.State == PendingReview || r.State == Queued || r.State == Unconfirmed || r.State == Ready):
			return s.transition(ctx, n, &r, change{to: Failed, actor: actor, reason: messages("rejected by approval policy after review by "+actor, v.Messages)})
		case r.State != PendingReview:
			return nil
		case v.Outcome == OutcomeApprove || v.Outcome == OutcomeNone:
			to := r.ReviewFrom
			if to == "" {
				to = Queued
			}
			if err := s.transition(ctx, n, &r, change{to: to, actor: actor, reason: "approved after review by " + actor,
				sets: []string{"review_from = ''"}}); err != nil {
				return err
			}
			r.ReviewFrom = ""
			if to == Queued {
				if _, err := s.promote(ctx, n, r.StackID); err != nil {
					return err
				}
				r, err = s.Get(ctx, r.ID)
				return err
			}
		}
		return nil
	})
	return r, err
}

// ErrStaleReview: the run changed state while its approval policies were
// being evaluated after a review.
var ErrStaleReview = errs.E(errs.Conflict, "the run changed while the review was being evaluated")

// CheckReviewable refuses a review of a run that no review can change.
func CheckReviewable(r Run) error {
	switch r.State {
	case Queued, Ready, Unconfirmed, PendingReview:
		return nil
	}
	return errs.E(errs.Conflict, "cannot review run %s: it is %s (a review is possible while QUEUED, UNCONFIRMED or PENDING_REVIEW)", r.ID, r.State)
}

// planVerdicts evaluates, outside any transaction, the plan policies of a
// run that just planned and, for a proposed run whose plan drew warnings,
// its approval policies.
func (s *Service) planVerdicts(ctx context.Context, runID, workerID string, hasChanges bool, d Delta) (plan, review Verdict, err error) {
	if s.Policies == nil {
		return plan, review, nil
	}
	r, err := s.Get(ctx, runID)
	if err != nil {
		return plan, review, err
	}
	if r.State != Planning || r.WorkerID != workerID {
		return plan, review, nil // jobStep refuses it with the reason
	}
	r.HasDelta, r.Delta, r.HasChanges = true, d, hasChanges
	if plan, err = s.Policies.Plan(ctx, r); err != nil {
		return plan, review, err
	}
	if r.Type == Proposed && hasChanges && plan.Outcome == OutcomeWarn {
		r.State = Finished
		review, err = s.Policies.Approval(ctx, r, Finished)
	}
	return plan, review, err
}

// proposedDone ends a proposed run that planned changes: FINISHED, unless
// its plan drew warnings and approval policies want a review first.
func (s *Service) proposedDone(ctx context.Context, n *notes, r *Run, workerID string, review Verdict) error {
	if err := review.record(ctx, r.ID); err != nil {
		return err
	}
	switch review.Outcome {
	case OutcomeReject:
		return s.transition(ctx, n, r, change{to: Failed, actor: "policy", reason: messages("rejected by approval policy", review.Messages)})
	case OutcomeUndecided:
		return s.transition(ctx, n, r, change{to: PendingReview, actor: "policy", reason: messages("plan warnings wait for review", review.Messages),
			sets: []string{"review_from = ?", "worker_id = ''", "job_token_hash = ''", "state_token_hash = ''"}, args: []any{Finished}})
	}
	return s.transition(ctx, n, r, change{to: Finished, actor: "worker:" + workerID, reason: "proposed run planned"})
}

// planNotes are the log lines that tell what plan policies decided.
func planNotes(v Verdict) []string {
	var head string
	switch v.Outcome {
	case OutcomeNone:
		return nil
	case OutcomeDeny:
		head = "Plan policies denied this run:"
	case OutcomeWarn:
		head = "Plan policies warn:"
	default:
		head = "Plan policies passed."
	}
	out := []string{head}
	for _, m := range v.Messages {
		out = append(out, "  - "+m)
	}
	return out
}
