package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"

	"github.com/gantry-iac/gantry/internal/apiv1"
	"github.com/gantry-iac/gantry/internal/client"
)

// terminal reports whether a run state is final.
func terminal(state string) bool {
	switch state {
	case apiv1.StateFinished, apiv1.StateFailed, apiv1.StateDiscarded, apiv1.StateCanceled, apiv1.StateStopped:
		return true
	}
	return false
}

// settled reports whether --wait stops at a run: it is final or waits for a person.
func settled(r apiv1.Run) bool {
	return terminal(r.State) || r.State == apiv1.StateUnconfirmed || r.State == apiv1.StatePendingReview
}

// outcome is the error of a run that ended without success.
func outcome(r apiv1.Run) error {
	switch r.State {
	case apiv1.StateFailed, apiv1.StateCanceled, apiv1.StateStopped, apiv1.StateDiscarded:
		msg := fmt.Sprintf("run %s ended %s", r.ID, r.State)
		if r.Reason != "" {
			msg += ": " + r.Reason
		}
		return errors.New(msg)
	}
	return nil
}

// finish prints run, or with wait first polls it until it settles (telling
// each state on stderr) and fails when it ended without success.
func (a *app) finish(ctx context.Context, c *client.Client, run apiv1.Run, wait bool) error {
	if !wait {
		return a.printRuns([]apiv1.Run{run}, run)
	}
	last := ""
	run, err := c.WaitRun(ctx, run.ID, func(r apiv1.Run) bool {
		if r.State != last {
			fmt.Fprintf(a.stderr, "%s %s\n", r.ID, r.State)
			last = r.State
		}
		return settled(r)
	}, pollInterval)
	if err != nil {
		return err
	}
	if err := a.printRuns([]apiv1.Run{run}, run); err != nil {
		return err
	}
	switch run.State {
	case apiv1.StateUnconfirmed:
		fmt.Fprintf(a.stderr, "Run %s waits for confirmation: gantry stack confirm --id %s --run %s\n", run.ID, run.Stack, run.ID)
	case apiv1.StatePendingReview:
		fmt.Fprintf(a.stderr, "Run %s waits for review: gantry run review --id %s --approve|--reject\n", run.ID, run.ID)
	}
	return outcome(run)
}

func (a *app) runCreateCommand(use, short, typ string) *cobra.Command {
	var (
		id, sha string
		wait    bool
	)
	cmd := &cobra.Command{
		Use:   use,
		Short: short,
		Args:  cobra.NoArgs,
		RunE: a.withClient(func(ctx context.Context, c *client.Client, _ []string) error {
			run, err := c.CreateRun(ctx, id, apiv1.RunCreate{Type: typ, SHA: sha})
			if err != nil {
				return err
			}
			return a.finish(ctx, c, run, wait)
		}),
	}
	f := cmd.Flags()
	f.StringVar(&id, "id", "", "stack id")
	if typ != apiv1.RunDestroy {
		f.StringVar(&sha, "sha", "", "commit to run (default: head of the stack's branch)")
	}
	f.BoolVar(&wait, "wait", false, "wait until the run ends or waits for a person; fail if it did not succeed")
	required(cmd, "id")
	return cmd
}

func (a *app) taskCommand() *cobra.Command {
	var (
		id   string
		wait bool
	)
	cmd := &cobra.Command{
		Use:   "task --id ID [--wait] -- COMMAND...",
		Short: "Queue a task: run a command in the stack's workspace",
		Args:  cobra.MinimumNArgs(1),
		RunE: a.withClient(func(ctx context.Context, c *client.Client, args []string) error {
			run, err := c.CreateTask(ctx, id, apiv1.TaskCreate{Command: strings.Join(args, " ")})
			if err != nil {
				return err
			}
			return a.finish(ctx, c, run, wait)
		}),
	}
	cmd.Flags().StringVar(&id, "id", "", "stack id")
	cmd.Flags().BoolVar(&wait, "wait", false, "wait until the task ends; fail if it did not succeed")
	required(cmd, "id")
	return cmd
}

func (a *app) confirmCommand() *cobra.Command {
	var (
		id, runID string
		wait      bool
	)
	cmd := &cobra.Command{
		Use:   "confirm",
		Short: "Confirm an unconfirmed run so that it applies",
		Args:  cobra.NoArgs,
		RunE: a.withClient(func(ctx context.Context, c *client.Client, _ []string) error {
			if _, err := stackOf(ctx, c, id, runID); err != nil {
				return err
			}
			run, err := c.ConfirmRun(ctx, runID)
			if err != nil {
				return err
			}
			return a.finish(ctx, c, run, wait)
		}),
	}
	cmd.Flags().StringVar(&id, "id", "", "stack id")
	cmd.Flags().StringVar(&runID, "run", "", "run id")
	cmd.Flags().BoolVar(&wait, "wait", false, "wait until the run ends; fail if it did not succeed")
	required(cmd, "id", "run")
	return cmd
}

func (a *app) discardCommand() *cobra.Command {
	var id, runID string
	cmd := &cobra.Command{
		Use:   "discard",
		Short: "Discard an unconfirmed run",
		Args:  cobra.NoArgs,
		RunE: a.withClient(func(ctx context.Context, c *client.Client, _ []string) error {
			if _, err := stackOf(ctx, c, id, runID); err != nil {
				return err
			}
			run, err := c.DiscardRun(ctx, runID)
			if err != nil {
				return err
			}
			return a.printRuns([]apiv1.Run{run}, run)
		}),
	}
	cmd.Flags().StringVar(&id, "id", "", "stack id")
	cmd.Flags().StringVar(&runID, "run", "", "run id")
	required(cmd, "id", "run")
	return cmd
}

func (a *app) logsCommand() *cobra.Command {
	var (
		id, runID string
		follow    bool
	)
	cmd := &cobra.Command{
		Use:   "logs",
		Short: "Print the log of a run",
		Args:  cobra.NoArgs,
		RunE: a.withClient(func(ctx context.Context, c *client.Client, _ []string) error {
			if _, err := stackOf(ctx, c, id, runID); err != nil {
				return err
			}
			// On a terminal, the control sequences of the run's output
			// are shown, not obeyed; piped or with -o json, the log is
			// written as stored.
			out := a.stdout
			if a.output != "json" && isTerminalOut(a.stdout) {
				ts := &termSafe{w: a.stdout}
				defer ts.Flush()
				out = ts
			}
			if follow {
				return c.FollowLogs(ctx, runID, out)
			}
			var offset int64
			for {
				chunk, err := c.RunLogs(ctx, runID, offset, 0)
				if err != nil {
					return err
				}
				if chunk.Data == "" || chunk.NextOffset <= offset {
					return nil
				}
				if _, err := io.WriteString(out, chunk.Data); err != nil {
					return err
				}
				offset = chunk.NextOffset
			}
		}),
	}
	cmd.Flags().StringVar(&id, "id", "", "stack id")
	cmd.Flags().StringVar(&runID, "run", "", "run id")
	cmd.Flags().BoolVarP(&follow, "follow", "f", false, "stream the log until the run ends")
	required(cmd, "id", "run")
	return cmd
}

func (a *app) runCommand() *cobra.Command {
	return group("run", "List, inspect, review, cancel and stop runs",
		a.runList(), a.runShow(),
		a.runAction("cancel", "Cancel a run that has not started", (*client.Client).CancelRun, false),
		a.runAction("stop", "Stop a run in progress", (*client.Client).StopRun, false),
		a.runAction("retry", "Retry a failed, stopped, canceled or discarded run: a new run on the same commit", (*client.Client).RetryRun, true),
		a.runReview(),
	)
}

// runAction is a command acting on one run; with waitable (retry, which
// starts a new run) it also takes --wait.
func (a *app) runAction(use, short string, act func(*client.Client, context.Context, string) (apiv1.Run, error), waitable bool) *cobra.Command {
	var id string
	var wait bool
	cmd := &cobra.Command{
		Use:   use,
		Short: short,
		Args:  cobra.NoArgs,
		RunE: a.withClient(func(ctx context.Context, c *client.Client, _ []string) error {
			run, err := act(c, ctx, id)
			if err != nil {
				return err
			}
			return a.finish(ctx, c, run, wait)
		}),
	}
	cmd.Flags().StringVar(&id, "id", "", "run id")
	if waitable {
		cmd.Flags().BoolVar(&wait, "wait", false, "wait until the new run ends or waits for a person; fail if it did not succeed")
	}
	required(cmd, "id")
	return cmd
}

func (a *app) runList() *cobra.Command {
	var (
		opts  client.RunListOptions
		limit int
	)
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List runs, newest first",
		Args:  cobra.NoArgs,
		RunE: a.withClient(func(ctx context.Context, c *client.Client, _ []string) error {
			// States and types are upper case (Spacelift's); the server
			// refuses others with the allowed values.
			opts.State, opts.Type = strings.ToUpper(opts.State), strings.ToUpper(opts.Type)
			runs, err := collect(limit, func(o client.ListOptions) (apiv1.List[apiv1.Run], error) {
				opts.ListOptions = o
				return c.ListRuns(ctx, opts)
			})
			if err != nil {
				return err
			}
			return a.printRuns(runs, runs)
		}),
	}
	f := cmd.Flags()
	f.StringVar(&opts.Stack, "stack", "", "only runs of this stack")
	f.StringVar(&opts.State, "state", "", "only runs in this state (e.g. FAILED)")
	f.StringVar(&opts.Type, "type", "", "only runs of this type (TRACKED, PROPOSED, DESTROY, TASK)")
	f.StringVar(&opts.Space, "space", "", "only runs of stacks in this space")
	f.IntVar(&limit, "limit", 50, "list at most this many (0: all)")
	return cmd
}

// printRuns prints runs as a table, or jsonValue as JSON.
func (a *app) printRuns(runs []apiv1.Run, jsonValue any) error {
	return a.print(jsonValue, func(w io.Writer) {
		row(w, "ID", "STACK", "TYPE", "STATE", "COMMIT", "DELTA", "CREATED")
		for _, r := range runs {
			row(w, r.ID, r.Stack, r.Type, r.State, shortSHA(r.CommitSHA), fmtDelta(r.Delta), fmtTime(r.CreatedAt))
		}
	})
}

func fmtDelta(d *apiv1.Delta) string {
	if d == nil {
		return "-"
	}
	return fmt.Sprintf("+%d ~%d -%d", d.Add, d.Change, d.Destroy)
}

func (a *app) runShow() *cobra.Command {
	var id string
	cmd := &cobra.Command{
		Use:   "show",
		Short: "Show a run, its timeline, policy receipts and reviews",
		Args:  cobra.NoArgs,
		RunE: a.withClient(func(ctx context.Context, c *client.Client, _ []string) error {
			r, err := c.GetRun(ctx, id)
			if err != nil {
				return err
			}
			rp, err := runPolicies(ctx, c, r)
			if err != nil {
				return err
			}
			return a.print(rp, func(w io.Writer) { runDetail(w, r); policyDetail(w, rp) })
		}),
	}
	cmd.Flags().StringVar(&id, "id", "", "run id")
	required(cmd, "id")
	return cmd
}

func runDetail(w io.Writer, r apiv1.Run) {
	field(w, "ID", r.ID)
	field(w, "Stack", r.Stack)
	field(w, "Space", r.Space)
	field(w, "Type", r.Type)
	field(w, "State", r.State)
	field(w, "Reason", r.Reason)
	if r.WaitingFor != "" {
		field(w, "Waiting for", r.WaitingFor)
	}
	field(w, "Blocking", r.Blocking)
	field(w, "Commit", strings.TrimSpace(r.CommitSHA+" "+firstLine(r.CommitMessage)))
	field(w, "Command", r.Command)
	field(w, "Triggered by", r.TriggeredBy)
	field(w, "Delta", fmtDelta(r.Delta))
	field(w, "Has changes", r.HasChanges)
	field(w, "Created", fmtTime(r.CreatedAt))
	field(w, "Updated", fmtTime(r.UpdatedAt))
	if len(r.Transitions) == 0 {
		return
	}
	io.WriteString(w, "\n")
	row(w, "TIME", "TRANSITION", "ACTOR", "REASON")
	for _, t := range r.Transitions {
		move := t.To
		if t.From != "" {
			move = t.From + " → " + t.To
		}
		row(w, fmtTime(t.At), move, orDash(t.Actor), t.Reason)
	}
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	return line
}
