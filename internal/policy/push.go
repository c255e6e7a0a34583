package policy

import (
	"context"
	"path"
	"strings"
	"time"

	"github.com/gantry-iac/gantry/internal/errs"
	"github.com/gantry-iac/gantry/internal/policy/engine"
	"github.com/gantry-iac/gantry/internal/run"
)

// Push is a git push or pull-request event for one stack (given to
// `gantry stack notify-push` until VCS webhooks exist).
type Push struct {
	Branch        string
	SHA           string
	Message       string
	Author        string
	Tag           string
	AffectedFiles []string
	At            time.Time
	// PullRequest, when set, makes the event a pull-request event.
	PullRequest *PullRequest
}

// PullRequest describes the pull request of a pull-request event.
type PullRequest struct {
	ID         int
	Action     string // opened, synchronize, closed, labeled...
	Title      string
	Author     string
	Labels     []string
	BaseBranch string
	Draft      bool
	Closed     bool
	Approved   bool
	Mergeable  bool
}

// PushResult says what a push led to.
type PushResult struct {
	Action   string   // track, propose or ignore
	Run      *run.Run // the run created (nil when ignored)
	Canceled []string // runs canceled because a policy asked
	Message  string   // the message a policy gave (commit status)
	Fail     bool     // a policy asked to fail the commit status
	Default  bool     // no push policy is attached: the default rules decided
	Receipts []Receipt
}

// MaxAffectedFiles bounds the files of one push event.
const MaxAffectedFiles = 10000

// NotifyPush evaluates the GIT_PUSH policies of a stack on a push (or the
// default rules when none is attached) and starts the run they ask for.
func (s *Service) NotifyPush(ctx context.Context, stackID string, p Push, by Actor) (PushResult, error) {
	if p.SHA == "" || p.Branch == "" && p.Tag == "" {
		return PushResult{}, errs.E(errs.Invalid, "a push needs a commit SHA and a branch (or a tag)")
	}
	if len(p.AffectedFiles) > MaxAffectedFiles {
		return PushResult{}, errs.E(errs.Invalid, "a push may list at most %d affected files", MaxAffectedFiles)
	}
	if p.At.IsZero() {
		p.At = time.Now()
	}
	v, err := s.stackView(ctx, stackID)
	if err != nil {
		return PushResult{}, err
	}
	pols, err := s.ForStack(ctx, v.Stack, engine.TypePush)
	if err != nil {
		return PushResult{}, err
	}
	inProgress, err := s.inProgress(ctx, stackID, v.Branch)
	if err != nil {
		return PushResult{}, err
	}
	res := PushResult{Default: len(pols) == 0}
	var d engine.Decision
	owners := map[string][]string{} // the flags' owners: the push policies that set them
	if res.Default {
		res.Action = defaultPush(v, p)
	} else {
		input := obj{"push": pushObject(p), "pull_request": prObject(p, v.Branch), "stack": stackObject(v), "in_progress": inProgress, "vcs_integration": nil}
		ev, err := s.evaluate(ctx, pols, engine.TypePush, input, "")
		if err != nil {
			return res, err
		}
		if len(ev.Errors) > 0 {
			return res, errs.E(errs.Invalid, "push policy failed: %s", failClosed(ev))
		}
		d, res.Receipts = ev.Decision, ev.Receipts
		for i, pd := range ev.Decisions {
			for _, f := range pd.Flags {
				owners[f] = append(owners[f], ev.Policies[i].ID)
			}
		}
		res.Action, res.Message, res.Fail = d.PushAction(), d.Message, d.Fail
	}
	for _, runID := range d.Cancel {
		// Only this stack's runs that have not started (input.in_progress).
		if !cancelable(inProgress, runID) {
			continue
		}
		if _, err := s.runs.Cancel(ctx, runID, "push_policy"); err == nil {
			res.Canceled = append(res.Canceled, runID)
		}
	}
	typ := ""
	switch res.Action {
	case engine.PushTrack:
		typ = run.Tracked
	case engine.PushPropose:
		typ = run.Proposed
	default:
		return res, nil
	}
	flags := append([]string{}, d.Flags...)
	if d.NoTrigger {
		flags = append(flags, NoTriggerFlag)
	}
	pr := 0
	if p.PullRequest != nil {
		pr = p.PullRequest.ID
	}
	r, err := s.runs.Create(ctx, run.New{StackID: stackID, Type: typ, CommitSHA: p.SHA, CommitMessage: p.Message,
		CommitBranch: p.Branch, CommitAuthor: p.Author, CommitTag: p.Tag, PullRequestID: pr,
		TriggeredBy: pushTriggeredPrefix + by.Name, Creator: run.Creator{Admin: by.Admin, Teams: by.Teams, Name: by.DisplayName, IP: by.IP}, Flags: flags, FlagOwners: owners, Reason: "push of " + short(p.SHA) + " to " + p.Branch})
	if err != nil {
		return res, err
	}
	res.Run = &r
	return res, nil
}

// pushTriggeredPrefix starts the triggered_by of runs a push started,
// followed by who notified the push (policy inputs show null).
const pushTriggeredPrefix = "push:"

// NoTriggerFlag marks a run whose end must not evaluate trigger policies
// (a push policy said `notrigger`).
const NoTriggerFlag = "gantry:notrigger"

func short(sha string) string {
	if len(sha) > 12 {
		return sha[:12]
	}
	return sha
}

// defaultPush is Spacelift's behaviour without a push policy: tags are
// ignored; a change under the project root tracks on the tracked branch
// and is proposed elsewhere (and on pull requests).
func defaultPush(v stackView, p Push) string {
	if p.Tag != "" && p.Branch == "" || !affects(v.ProjectRoot, p.AffectedFiles) {
		return engine.PushIgnore
	}
	if p.PullRequest == nil && p.Branch == v.Branch {
		return engine.PushTrack
	}
	if p.PullRequest != nil && p.PullRequest.Closed {
		return engine.PushIgnore
	}
	return engine.PushPropose
}

// affects reports whether a file lies under the project root.
func affects(root string, files []string) bool {
	root = strings.Trim(path.Clean("/"+root), "/")
	for _, f := range files {
		f = strings.TrimPrefix(path.Clean("/"+f), "/")
		if root == "" || f == root || strings.HasPrefix(f, root+"/") {
			return true
		}
	}
	return false
}

func pushObject(p Push) obj {
	return obj{"affected_files": strs(nonNil(p.AffectedFiles)), "author": p.Author, "branch": p.Branch,
		"created_at": ns(p.At), "hash": p.SHA, "message": p.Message, "tag": p.Tag}
}

// prObject is input.pull_request of a push to a stack tracking
// stackBranch.
func prObject(p Push, stackBranch string) any {
	pr := p.PullRequest
	if pr == nil {
		return nil
	}
	head := commit{sha: p.SHA, message: p.Message, author: p.Author, branch: p.Branch, tag: p.Tag, at: p.At,
		onTracked: p.Branch == stackBranch, pullRequest: pr.ID}.object()
	return obj{"id": pr.ID, "action": pr.Action, "action_initiator": pr.Author, "author": pr.Author, "title": pr.Title,
		"labels": strs(nonNil(pr.Labels)), "draft": pr.Draft, "closed": pr.Closed, "approved": pr.Approved,
		"mergeable": pr.Mergeable, "undiverged": true, "head": head, "head_owner": "", "comment": "",
		"base": commit{branch: pr.BaseBranch, onTracked: pr.BaseBranch == stackBranch}.object(),
		"diff": strs(nonNil(p.AffectedFiles)),
	}
}

// inProgress is input.in_progress: the stack's runs not yet terminal.
func (s *Service) inProgress(ctx context.Context, stackID, branch string) ([]any, error) {
	runs, _, err := s.runs.List(ctx, run.Filter{Stack: stackID, Limit: 200})
	if err != nil {
		return nil, err
	}
	out := []any{}
	for _, r := range runs {
		if run.Terminal(r.State) {
			continue
		}
		o := runObject(r, branch, nil)
		delete(o, "changes")
		delete(o, "runtime_config")
		delete(o, "creator_session")
		out = append(out, o)
	}
	return out, nil
}

// cancelable reports whether runID is one of the stack's runs in progress
// that has not started (QUEUED or READY).
func cancelable(inProgress []any, runID string) bool {
	for _, x := range inProgress {
		o, _ := x.(obj)
		if o["id"] == runID && (o["state"] == run.Queued || o["state"] == run.Ready) {
			return true
		}
	}
	return false
}
