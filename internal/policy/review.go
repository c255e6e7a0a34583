package policy

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/gantry-iac/gantry/internal/audit"
	"github.com/gantry-iac/gantry/internal/db"
	"github.com/gantry-iac/gantry/internal/errs"
	"github.com/gantry-iac/gantry/internal/id"
	"github.com/gantry-iac/gantry/internal/labels"
	"github.com/gantry-iac/gantry/internal/run"
)

// Review decisions.
const (
	Approve = "APPROVE"
	Reject  = "REJECT"
)

// Review is one person's decision on a run.
type Review struct {
	ID     string
	RunID  string
	Author string
	// AuthorName is the reviewer's display name from single sign-on
	// ("" if none).
	AuthorName string
	Decision   string
	Note       string
	RunState   string // the stage the run waited in when reviewed
	RemoteIP   string
	// Admin and Teams: the reviewer then (an admin? its IdP groups).
	Admin bool
	Teams []string
	// Roles: the reviewer's roles in the run's space then.
	Roles     []Role
	CreatedAt time.Time
}

// MaxNote bounds a review note.
const MaxNote = 4096

// stageOf is the stage a run waits in, for approval policies.
func stageOf(r run.Run) string {
	switch r.State {
	case run.PendingReview:
		if r.ReviewFrom != "" {
			return r.ReviewFrom
		}
		return run.Queued
	case run.Ready:
		return run.Queued
	}
	return r.State
}

// AddReview records a review and evaluates the approval policies again:
// the run goes back to where it waited when they all approve, fails when
// one rejects, and stays when they are still undecided.
func (s *Service) AddReview(ctx context.Context, runID string, by Actor, decision, note, remoteIP string) (run.Run, error) {
	author := by.Name
	decision = strings.ToUpper(decision)
	if decision != Approve && decision != Reject {
		return run.Run{}, errs.E(errs.Invalid, "a review must approve or reject")
	}
	if len(note) > MaxNote {
		return run.Run{}, errs.E(errs.Invalid, "review note longer than %d bytes", MaxNote)
	}
	r, err := s.runs.Get(ctx, runID)
	if err != nil {
		return r, err
	}
	if err := run.CheckReviewable(r); err != nil {
		return r, err
	}
	err = s.db.Tx(ctx, func(ctx context.Context) error {
		roles, err := json.Marshal(nonNilRoles(by.Roles))
		if err != nil {
			return err
		}
		if _, err := s.db.Exec(ctx, `INSERT INTO run_reviews (id, run_id, author, author_name, decision, note, run_state, remote_ip, admin, teams, roles, created_at)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)`,
			id.New("rev"), r.ID, author, by.DisplayName, decision, note, stageOf(r), remoteIP, by.Admin, labels.Encode(by.Teams), string(roles), time.Now().UnixNano()); err != nil {
			return err
		}
		if s.Audit == nil {
			return nil
		}
		change, err := audit.NewChange(nil, map[string]string{"decision": decision, "note": note, "run_state": stageOf(r)})
		if err != nil {
			return err
		}
		_, err = s.Audit.Record(ctx, audit.Event{Action: "run.review", SubjectType: "run", SubjectID: r.ID, Space: r.SpaceID, Change: change})
		return err
	})
	if err != nil {
		return r, err
	}
	// Evaluate on the run as it is, and apply the verdict only if the run
	// did not move meanwhile (a confirm, a claim, another review); if it
	// did, evaluate again on its new state.
	for attempt := 0; ; attempt++ {
		seen := r.State
		stage := stageOf(r)
		r.State = stage
		v, err := s.Approval(ctx, r, stage)
		if err != nil {
			return r, err
		}
		out, err := s.runs.ReviewOutcome(ctx, runID, author, seen, v)
		if !errors.Is(err, run.ErrStaleReview) || attempt == 4 {
			return out, err
		}
		if r, err = s.runs.Get(ctx, runID); err != nil {
			return r, err
		}
		if err := run.CheckReviewable(r); err != nil {
			return r, errs.E(errs.Conflict, "your review is recorded, but run %s became %s before it was applied", r.ID, r.State)
		}
	}
}

// Reviews returns a run's reviews, oldest first.
func (s *Service) Reviews(ctx context.Context, runID string) ([]Review, error) {
	return db.Collect(ctx, s.db, func(row db.Scanner) (Review, error) {
		var rv Review
		var at int64
		var teams, roles string
		if err := row.Scan(&rv.ID, &rv.RunID, &rv.Author, &rv.AuthorName, &rv.Decision, &rv.Note, &rv.RunState, &rv.RemoteIP, &rv.Admin, &teams, &roles, &at); err != nil {
			return Review{}, err
		}
		rv.CreatedAt = time.Unix(0, at).UTC()
		if err := json.Unmarshal([]byte(roles), &rv.Roles); err != nil {
			return Review{}, fmt.Errorf("review %s: roles: %w", rv.ID, err)
		}
		var err error
		rv.Teams, err = labels.Decode(teams)
		return rv, err
	}, `SELECT id, run_id, author, author_name, decision, note, run_state, remote_ip, admin, teams, roles, created_at FROM run_reviews WHERE run_id = $1 ORDER BY id`, runID)
}

// reviewsInput is Spacelift's input.reviews: only each reviewer's newest
// review counts; reviews made in the stage being decided are current, the
// others older.
func (s *Service) reviewsInput(ctx context.Context, runID, stage string) (map[string]any, error) {
	all, err := s.Reviews(ctx, runID)
	if err != nil {
		return nil, err
	}
	newest := map[string]Review{}
	var order []string
	for _, rv := range all {
		if _, seen := newest[rv.Author]; !seen {
			order = append(order, rv.Author)
		}
		newest[rv.Author] = rv
	}
	group := func() obj { return obj{"approvals": []any{}, "rejections": []any{}} }
	current, older := group(), group()
	for _, author := range order {
		rv := newest[author]
		g := older
		if rv.RunState == stage {
			g = current
		}
		item := obj{"author": login(rv.Author), "author_roles": rolesInput(rv.Roles), "state": rv.RunState, "state_version": 0, "note": rv.Note,
			"request": obj{"remote_ip": rv.RemoteIP, "timestamp_ns": ns(rv.CreatedAt)}, "session": session(rv.Author, rv.AuthorName, rv.RemoteIP, rv.Admin, rv.Teams)}
		key := "approvals"
		if rv.Decision == Reject {
			key = "rejections"
		}
		g[key] = append(g[key].([]any), item)
	}
	return obj{"current": current, "older": older}, nil
}

func nonNilRoles(l []Role) []Role {
	if l == nil {
		return []Role{}
	}
	return l
}

// rolesInput is a review's author_roles: {"id", "slug", "name"} of each
// role (id and slug are both the role's slug: Spacelift's policies read
// slug, its stack roles id).
func rolesInput(l []Role) []any {
	out := make([]any, 0, len(l))
	for _, r := range l {
		out = append(out, obj{"id": r.Slug, "slug": r.Slug, "name": r.Name})
	}
	return out
}
