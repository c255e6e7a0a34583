package cli

import (
	"context"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/gantry-iac/gantry/internal/apiv1"
	"github.com/gantry-iac/gantry/internal/client"
	"github.com/gantry-iac/gantry/internal/errs"
)

// runReview is `gantry run review`.
func (a *app) runReview() *cobra.Command {
	var (
		id, note        string
		approve, reject bool
	)
	cmd := &cobra.Command{
		Use:   "review",
		Short: "Approve or reject a run that waits for review (approval policies decide again)",
		Args:  cobra.NoArgs,
		RunE: a.withClient(func(ctx context.Context, c *client.Client, _ []string) error {
			decision := "APPROVE"
			if reject {
				decision = "REJECT"
			}
			run, err := c.ReviewRun(ctx, id, apiv1.ReviewCreate{Decision: decision, Note: note})
			if err != nil {
				return err
			}
			return a.printRuns([]apiv1.Run{run}, run)
		}),
	}
	f := cmd.Flags()
	f.StringVar(&id, "id", "", "run id")
	f.BoolVar(&approve, "approve", false, "approve the run")
	f.BoolVar(&reject, "reject", false, "reject the run")
	f.StringVar(&note, "note", "", "note kept with the review (input.reviews of approval policies)")
	exclusive(cmd, "approve", "reject")
	cmd.MarkFlagsOneRequired("approve", "reject")
	required(cmd, "id")
	return cmd
}

// runWithPolicies is what `run show -o json` prints: the run's fields, its
// policy receipts and its reviews.
type runWithPolicies struct {
	apiv1.Run
	PolicyReceipts []apiv1.PolicyReceipt `json:"policy_receipts"`
	Reviews        []apiv1.Review        `json:"reviews"`
}

// runPolicies fetches a run's policy receipts and reviews. A server without
// policies (503) or an older one (404) has none.
func runPolicies(ctx context.Context, c *client.Client, r apiv1.Run) (runWithPolicies, error) {
	out := runWithPolicies{Run: r, PolicyReceipts: []apiv1.PolicyReceipt{}, Reviews: []apiv1.Review{}}
	rc, err := c.RunPolicyReceipts(ctx, r.ID)
	if missing(err) {
		return out, nil
	}
	if err != nil {
		return out, err
	}
	rv, err := c.RunReviews(ctx, r.ID)
	if err != nil && !missing(err) {
		return out, err
	}
	out.PolicyReceipts, out.Reviews = orEmpty(rc.Items), orEmpty(rv.Items)
	return out, nil
}

func missing(err error) bool {
	return errs.Is(err, errs.NotFound) || errs.Is(err, errs.Unavailable)
}

// policyDetail prints a run's flags, receipts and reviews after its timeline.
func policyDetail(w io.Writer, r runWithPolicies) {
	if len(r.Flags) > 0 {
		io.WriteString(w, "\n")
		field(w, "Flags", strings.Join(r.Flags, ","))
	}
	if len(r.PolicyReceipts) > 0 {
		io.WriteString(w, "\n")
		receiptRows(w, r.PolicyReceipts)
	}
	if len(r.Reviews) > 0 {
		io.WriteString(w, "\n")
		row(w, "REVIEWED", "REVIEWER", "DECISION", "STAGE", "NOTE")
		for _, rv := range r.Reviews {
			row(w, fmtTime(rv.CreatedAt), rv.Author, rv.Decision, rv.RunState, orDash(oneLine(rv.Note, 60)))
		}
	}
}

func receiptRows(w io.Writer, receipts []apiv1.PolicyReceipt) {
	row(w, "EVALUATED", "POLICY", "TYPE", "VERSION", "OUTCOME", "MESSAGES")
	for _, rc := range receipts {
		msgs := strings.Join(rc.Messages, "; ")
		if rc.Error != "" {
			msgs = strings.TrimPrefix(msgs+"; error: "+rc.Error, "; ")
		}
		row(w, fmtTime(rc.At), rc.Policy, rc.Type, rc.Version, orDash(rc.Outcome), orDash(oneLine(msgs, 80)))
	}
}

// stackNotifyPush is `gantry stack notify-push`.
func (a *app) stackNotifyPush() *cobra.Command {
	var (
		id, filesFrom string
		in            apiv1.PushEvent
		pr            apiv1.PushPullRequest
		wait          bool
	)
	cmd := &cobra.Command{
		Use:   "notify-push",
		Short: "Tell the server about a git push or pull-request event; GIT_PUSH policies decide whether a run starts",
		Args:  cobra.NoArgs,
	}
	cmd.RunE = a.withClient(func(ctx context.Context, c *client.Client, _ []string) error {
		f := cmd.Flags()
		if in.Branch == "" && in.Tag == "" {
			return usageErrorf("give --branch (or --tag for a tag push)")
		}
		in.AffectedFiles = nonEmpty(in.AffectedFiles)
		if filesFrom != "" {
			raw, err := a.readInput("files-from", filesFrom)
			if err != nil {
				return err
			}
			for _, line := range strings.Split(string(raw), "\n") {
				if line = strings.TrimSpace(line); line != "" {
					in.AffectedFiles = append(in.AffectedFiles, line)
				}
			}
		}
		if f.Changed("pull-request") {
			pr.Labels = nonEmpty(pr.Labels)
			in.PullRequest = &pr
		} else if prFlagGiven(f) {
			return usageErrorf("the pull-request flags need --pull-request N")
		}
		res, err := c.NotifyPush(ctx, id, in)
		if err != nil {
			return err
		}
		return a.finishPush(ctx, c, res, wait)
	})
	f := cmd.Flags()
	f.StringVar(&id, "id", "", "stack id")
	f.StringVar(&in.SHA, "sha", "", "commit pushed")
	f.StringVar(&in.Branch, "branch", "", "branch pushed (for a pull request: its head branch)")
	f.StringVar(&in.Message, "message", "", "commit message")
	f.StringVar(&in.Author, "author", "", "commit author")
	f.StringVar(&in.Tag, "tag", "", "tag pushed")
	f.StringArrayVar(&in.AffectedFiles, "file", nil, "file the push changed (repeatable)")
	f.StringVar(&filesFrom, "files-from", "", `file listing the changed files, one path per line ("-": standard input)`)
	f.IntVar(&pr.ID, "pull-request", 0, "number of the pull request: makes the event a pull-request event")
	f.StringVar(&pr.Action, "pr-action", "", "pull-request action: opened, synchronize, closed, labeled...")
	f.StringVar(&pr.Title, "pr-title", "", "pull-request title")
	f.StringVar(&pr.Author, "pr-author", "", "pull-request author")
	f.StringArrayVar(&pr.Labels, "pr-label", nil, "pull-request label (repeatable)")
	f.StringVar(&pr.BaseBranch, "base-branch", "", "branch the pull request targets")
	f.BoolVar(&pr.Draft, "draft", false, "the pull request is a draft")
	f.BoolVar(&pr.Closed, "closed", false, "the pull request is closed")
	f.BoolVar(&pr.Approved, "approved", false, "the pull request is approved")
	f.BoolVar(&pr.Mergeable, "mergeable", false, "the pull request is mergeable")
	f.BoolVar(&wait, "wait", false, "wait until the run created ends or waits for a person; fail if it did not succeed")
	required(cmd, "id", "sha")
	return cmd
}

var prFlags = []string{"pr-action", "pr-title", "pr-author", "pr-label", "base-branch", "draft", "closed", "approved", "mergeable"}

func prFlagGiven(f *pflag.FlagSet) bool {
	for _, name := range prFlags {
		if f.Changed(name) {
			return true
		}
	}
	return false
}

// finishPush prints what a push led to, with wait after the run it created
// settled (like `stack deploy --wait`).
func (a *app) finishPush(ctx context.Context, c *client.Client, res apiv1.PushResult, wait bool) error {
	res.Canceled, res.Receipts = orEmpty(res.Canceled), orEmpty(res.Receipts)
	if wait && res.Run != nil {
		run, err := a.waitSettled(ctx, c, res.Run.ID)
		if err != nil {
			return err
		}
		res.Run = &run
	}
	err := a.print(res, func(w io.Writer) {
		action := res.Action
		if res.Default {
			action += " (no push policy: default rules)"
		}
		field(w, "Action", action)
		field(w, "Message", res.Message)
		if res.Fail {
			field(w, "Commit status", "failure")
		}
		if len(res.Canceled) > 0 {
			field(w, "Canceled", strings.Join(res.Canceled, ","))
		}
		if r := res.Run; r != nil {
			field(w, "Run", r.ID+" "+r.Type+" "+r.State)
		} else {
			field(w, "Run", "none")
		}
		if len(res.Receipts) > 0 {
			io.WriteString(w, "\n")
			receiptRows(w, res.Receipts)
		}
	})
	if err != nil || !wait || res.Run == nil {
		return err
	}
	return outcome(*res.Run)
}

// waitSettled polls a run until it settles, telling each state on stderr.
func (a *app) waitSettled(ctx context.Context, c *client.Client, id string) (apiv1.Run, error) {
	last := ""
	run, err := c.WaitRun(ctx, id, func(r apiv1.Run) bool {
		if r.State != last {
			fmt.Fprintf(a.stderr, "%s %s\n", r.ID, r.State)
			last = r.State
		}
		return settled(r)
	}, pollInterval)
	if err != nil {
		return run, err
	}
	switch run.State {
	case apiv1.StateUnconfirmed:
		fmt.Fprintf(a.stderr, "Run %s waits for confirmation: gantry stack confirm --id %s --run %s\n", run.ID, run.Stack, run.ID)
	case apiv1.StatePendingReview:
		fmt.Fprintf(a.stderr, "Run %s waits for review: gantry run review --id %s --approve|--reject\n", run.ID, run.ID)
	}
	return run, nil
}
