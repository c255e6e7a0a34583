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

// waitFlags are how a command that starts or resumes a run waits for it:
// --wait polls its state until it ends or waits for a person; spacectl's
// --tail follows its log until it ends, and --auto-confirm also confirms
// it.
type waitFlags struct{ wait, tail, autoConfirm bool }

// register adds --wait (with its usage) and --tail, and with autoConfirm
// --auto-confirm.
func (w *waitFlags) register(cmd *cobra.Command, waitUsage string, autoConfirm bool) {
	f := cmd.Flags()
	f.BoolVar(&w.wait, "wait", false, waitUsage)
	f.BoolVar(&w.tail, "tail", false, "print the run's log until the run ends, through confirmation and review (spacectl's --tail); fail if it did not succeed")
	exclusive(cmd, "wait", "tail")
	if autoConfirm {
		f.BoolVar(&w.autoConfirm, "auto-confirm", false, "confirm the run once it is UNCONFIRMED, and print its log as --tail does (spacectl's --auto-confirm)")
		exclusive(cmd, "wait", "auto-confirm")
	}
}

// done ends a command that started or resumed run.
func (w *waitFlags) done(ctx context.Context, a *app, c *client.Client, run apiv1.Run) error {
	if w.tail || w.autoConfirm {
		return a.follow(ctx, c, run, w.autoConfirm)
	}
	return a.finish(ctx, c, run, w.wait)
}

// follow prints the run's log as it grows until the run ends (a run
// waiting for a confirmation or a review has not ended), telling its
// first and last state on stderr, and fails when it did not succeed, as
// spacectl's --tail does. With autoConfirm it confirms the run once it is
// UNCONFIRMED.
func (a *app) follow(ctx context.Context, c *client.Client, run apiv1.Run, autoConfirm bool) error {
	fmt.Fprintf(a.stderr, "%s %s\n", run.ID, run.State)
	fctx, cancel := context.WithCancel(ctx)
	defer cancel()
	logs := make(chan error, 1)
	go func() { logs <- c.FollowLogs(fctx, run.ID, a.stdout) }()
	var err error
	if autoConfirm {
		if err = a.autoConfirm(fctx, c, run.ID); err != nil {
			cancel()
		}
	}
	if lerr := <-logs; err == nil {
		err = lerr
	}
	if err != nil {
		return err
	}
	run, err = c.GetRun(ctx, run.ID)
	if err != nil {
		return err
	}
	fmt.Fprintf(a.stderr, "%s %s\n", run.ID, run.State)
	return outcome(run)
}

// autoConfirm waits until the run ends or is UNCONFIRMED, and confirms it
// then.
func (a *app) autoConfirm(ctx context.Context, c *client.Client, id string) error {
	r, err := c.WaitRun(ctx, id, func(r apiv1.Run) bool {
		return terminal(r.State) || r.State == apiv1.StateUnconfirmed
	}, pollInterval)
	if err != nil || r.State != apiv1.StateUnconfirmed {
		return err
	}
	if _, err := c.ConfirmRun(ctx, id); err != nil {
		return err
	}
	fmt.Fprintf(a.stderr, "%s confirmed (--auto-confirm)\n", id)
	return nil
}

func (a *app) runCreateCommand(use, short, typ string) *cobra.Command {
	var (
		id, sha string
		w       waitFlags
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
			return w.done(ctx, a, c, run)
		}),
	}
	f := cmd.Flags()
	f.StringVar(&id, "id", "", "stack id")
	if typ != apiv1.RunDestroy {
		f.StringVar(&sha, "sha", "", "commit to run (default: head of the stack's branch)")
	}
	w.register(cmd, "wait until the run ends or waits for a person; fail if it did not succeed", typ == apiv1.RunTracked)
	required(cmd, "id")
	return cmd
}

func (a *app) taskCommand() *cobra.Command {
	var (
		id string
		w  waitFlags
	)
	cmd := &cobra.Command{
		Use:   "task --id ID [--wait | --tail] -- COMMAND...",
		Short: "Queue a task: run a command in the stack's workspace",
		Args:  cobra.MinimumNArgs(1),
		RunE: a.withClient(func(ctx context.Context, c *client.Client, args []string) error {
			run, err := c.CreateTask(ctx, id, apiv1.TaskCreate{Command: strings.Join(args, " ")})
			if err != nil {
				return err
			}
			return w.done(ctx, a, c, run)
		}),
	}
	cmd.Flags().StringVar(&id, "id", "", "stack id")
	w.register(cmd, "wait until the task ends; fail if it did not succeed", false)
	required(cmd, "id")
	return cmd
}

func (a *app) confirmCommand() *cobra.Command {
	var (
		id, runID string
		w         waitFlags
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
			return w.done(ctx, a, c, run)
		}),
	}
	cmd.Flags().StringVar(&id, "id", "", "stack id")
	cmd.Flags().StringVar(&runID, "run", "", "run id")
	w.register(cmd, "wait until the run ends; fail if it did not succeed", false)
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
		id, runID      string
		follow, latest bool
	)
	cmd := &cobra.Command{
		Use:   "logs",
		Short: "Print the log of a run",
		Args:  cobra.NoArgs,
		RunE: a.withClient(func(ctx context.Context, c *client.Client, _ []string) error {
			if runID == "" && !latest {
				return usageErrorf("give the run: --run RUN, or --run-latest")
			}
			if latest {
				l, err := c.ListRuns(ctx, client.RunListOptions{Stack: id, ListOptions: client.ListOptions{Limit: 1}})
				if err != nil {
					return err
				}
				if len(l.Items) == 0 {
					return fmt.Errorf("stack %q has no runs", id)
				}
				runID = l.Items[0].ID
				fmt.Fprintf(a.stderr, "Using the latest run, %s\n", runID)
			} else if _, err := stackOf(ctx, c, id, runID); err != nil {
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
	cmd.Flags().BoolVar(&latest, "run-latest", false, "the stack's newest run (spacectl's --run-latest)")
	exclusive(cmd, "run", "run-latest")
	required(cmd, "id")
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
	var w waitFlags
	cmd := &cobra.Command{
		Use:   use,
		Short: short,
		Args:  cobra.NoArgs,
		RunE: a.withClient(func(ctx context.Context, c *client.Client, _ []string) error {
			run, err := act(c, ctx, id)
			if err != nil {
				return err
			}
			return w.done(ctx, a, c, run)
		}),
	}
	cmd.Flags().StringVar(&id, "id", "", "run id")
	if waitable {
		w.register(cmd, "wait until the new run ends or waits for a person; fail if it did not succeed", false)
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
	if r.Tool != "" {
		field(w, "Tool", strings.TrimSpace(r.Tool+" "+r.ToolVersion))
	}
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
