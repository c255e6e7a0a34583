package cli

import (
	"context"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/gantry-iac/gantry/internal/apiv1"
	"github.com/gantry-iac/gantry/internal/client"
)

// driftDetectionCommand is `gantry stack drift-detection`.
func (a *app) driftDetectionCommand() *cobra.Command {
	return group("drift-detection", "Schedule drift detection runs on a stack",
		a.driftDetectionSet(), a.driftDetectionShow(), a.driftDetectionDelete())
}

func (a *app) driftDetectionSet() *cobra.Command {
	var (
		id  string
		in  apiv1.DriftDetectionSet
		tz  string
		crn []string
	)
	cmd := &cobra.Command{
		Use:   "set --id ID --schedule CRON [--schedule CRON]... [--timezone TZ] [--reconcile] [--ignore-state]",
		Short: "Create or replace the stack's drift detection schedule",
		Long: `Create or replace the stack's drift detection schedule.

Each --schedule is a standard five-field cron expression (minute hour
day-of-month month day-of-week), or @yearly, @monthly, @weekly, @daily,
@midnight, @hourly; --timezone is an IANA name (default UTC). At each due
time Gantry queues a drift detection run (a PROPOSED run with
drift_detection) unless the stack's last tracked run did not finish
(--ignore-state runs it anyway), a drift detection run of the stack is
still going, or the worker pool's drift run limit is reached.
--reconcile queues a tracked run that applies the configuration back when
drift is found.`,
		Args: cobra.NoArgs,
		RunE: a.withClient(func(ctx context.Context, c *client.Client, _ []string) error {
			in.Schedule, in.Timezone = crn, tz
			dd, err := c.SetDriftDetection(ctx, id, in)
			if err != nil {
				return err
			}
			return a.printDriftDetection(dd)
		}),
	}
	f := cmd.Flags()
	f.StringVar(&id, "id", "", "stack id")
	f.StringArrayVar(&crn, "schedule", nil, "cron expression (repeatable)")
	f.StringVar(&tz, "timezone", "", "IANA time zone of the expressions (default UTC)")
	f.BoolVar(&in.Reconcile, "reconcile", false, "when drift is found, queue a tracked run that puts it back")
	f.BoolVar(&in.IgnoreState, "ignore-state", false, "run even when the stack's last tracked run did not finish")
	required(cmd, "id", "schedule")
	return cmd
}

func (a *app) printDriftDetection(dd apiv1.DriftDetection) error {
	return a.print(dd, func(w io.Writer) {
		field(w, "Schedule ID", dd.ID)
		field(w, "Schedule", strings.Join(dd.Schedule, "; "))
		field(w, "Time zone", dd.Timezone)
		field(w, "Reconcile", dd.Reconcile)
		field(w, "Ignore state", dd.IgnoreState)
		field(w, "Next run", fmtTimePtr(dd.NextRunAt))
		field(w, "Last due", fmtTimePtr(dd.LastDue))
		field(w, "Last run", dd.LastRun)
		field(w, "Last note", dd.LastNote)
	})
}

func fmtTimePtr(t *time.Time) string {
	if t == nil {
		return "-"
	}
	return fmtTime(*t)
}

func (a *app) driftDetectionShow() *cobra.Command {
	var id string
	cmd := &cobra.Command{
		Use:   "show --id ID",
		Short: "Show the stack's drift detection schedule",
		Args:  cobra.NoArgs,
		RunE: a.withClient(func(ctx context.Context, c *client.Client, _ []string) error {
			dd, err := c.GetDriftDetection(ctx, id)
			if err != nil {
				return err
			}
			return a.printDriftDetection(dd)
		}),
	}
	cmd.Flags().StringVar(&id, "id", "", "stack id")
	required(cmd, "id")
	return cmd
}

func (a *app) driftDetectionDelete() *cobra.Command {
	var id string
	cmd := &cobra.Command{
		Use:   "delete --id ID",
		Short: "Remove the stack's drift detection schedule (the drift found so far is kept)",
		Args:  cobra.NoArgs,
		RunE: a.withClient(func(ctx context.Context, c *client.Client, _ []string) error {
			if err := c.DeleteDriftDetection(ctx, id); err != nil {
				return err
			}
			return a.deleted("drift detection schedule of stack", id)
		}),
	}
	cmd.Flags().StringVar(&id, "id", "", "stack id")
	required(cmd, "id")
	return cmd
}

// scheduleCommand is `gantry stack schedule`.
func (a *app) scheduleCommand() *cobra.Command {
	return group("schedule", "Schedule tracked runs, tasks and a delete of a stack",
		a.scheduleCreate("run", "run --id ID --cron CRON [--cron CRON]... [--timezone TZ]", "Schedule a tracked run"),
		a.scheduleCreate("task", "task --id ID --cron CRON [--timezone TZ] -- COMMAND...", "Schedule a task (a command in the stack's workspace)"),
		a.scheduleDelete(), a.scheduleList(), a.scheduleRemove())
}

func (a *app) scheduleCreate(kind, use, short string) *cobra.Command {
	var (
		id, tz string
		crn    []string
	)
	cmd := &cobra.Command{
		Use:   use,
		Short: short,
		Args:  cobra.ArbitraryArgs,
		RunE: a.withClient(func(ctx context.Context, c *client.Client, args []string) error {
			in := apiv1.ScheduleCreate{Kind: kind, Cron: crn, Timezone: tz}
			if kind == "task" {
				if len(args) == 0 {
					return usageErrorf("a scheduled task needs a command after --")
				}
				in.Command = strings.Join(args, " ")
			} else if len(args) > 0 {
				return usageErrorf("unexpected arguments %q", args)
			}
			sc, err := c.CreateSchedule(ctx, id, in)
			if err != nil {
				return err
			}
			return a.printSchedules([]apiv1.Schedule{sc}, sc)
		}),
	}
	f := cmd.Flags()
	f.StringVar(&id, "id", "", "stack id")
	f.StringArrayVar(&crn, "cron", nil, "cron expression (repeatable)")
	f.StringVar(&tz, "timezone", "", "IANA time zone of the expressions (default UTC)")
	required(cmd, "id", "cron")
	return cmd
}

func (a *app) scheduleDelete() *cobra.Command {
	var (
		id, at string
		keep   bool
	)
	cmd := &cobra.Command{
		Use:   "delete --id ID --at TIME [--keep-resources]",
		Short: "Schedule the stack's deletion: destroy its resources, then delete it",
		Long: `Schedule the stack's deletion at a time (RFC 3339, e.g. 2027-01-31T18:00:00Z)
in the future: a time in the past is refused.

At that time Gantry queues a DESTROY run, confirms it itself when it waits
for a confirmation (approval policies still apply), and deletes the stack
once it finished. If the destroy run ends otherwise, the stack is kept and
the schedule says why. --keep-resources deletes the stack without
destroying anything.`,
		Args: cobra.NoArgs,
		RunE: a.withClient(func(ctx context.Context, c *client.Client, _ []string) error {
			t, err := time.Parse(time.RFC3339, at)
			if err != nil {
				return usageErrorf("--at must be an RFC 3339 time such as 2027-01-31T18:00:00Z")
			}
			del := !keep
			sc, err := c.CreateSchedule(ctx, id, apiv1.ScheduleCreate{Kind: "delete", At: &t, DeleteResources: &del})
			if err != nil {
				return err
			}
			return a.printSchedules([]apiv1.Schedule{sc}, sc)
		}),
	}
	f := cmd.Flags()
	f.StringVar(&id, "id", "", "stack id")
	f.StringVar(&at, "at", "", "when (RFC 3339)")
	f.BoolVar(&keep, "keep-resources", false, "delete the stack without destroying its resources")
	required(cmd, "id", "at")
	return cmd
}

func (a *app) scheduleList() *cobra.Command {
	var id string
	cmd := &cobra.Command{
		Use:   "list --id ID",
		Short: "List the stack's schedules (drift detection included)",
		Args:  cobra.NoArgs,
		RunE: a.withClient(func(ctx context.Context, c *client.Client, _ []string) error {
			l, err := c.ListSchedules(ctx, id)
			if err != nil {
				return err
			}
			return a.printSchedules(l.Items, l.Items)
		}),
	}
	cmd.Flags().StringVar(&id, "id", "", "stack id")
	required(cmd, "id")
	return cmd
}

func (a *app) scheduleRemove() *cobra.Command {
	var id, sch string
	cmd := &cobra.Command{
		Use:   "remove --id ID --schedule SCHEDULE",
		Short: "Remove a schedule of the stack",
		Args:  cobra.NoArgs,
		RunE: a.withClient(func(ctx context.Context, c *client.Client, _ []string) error {
			if err := c.DeleteSchedule(ctx, id, sch); err != nil {
				return err
			}
			return a.deleted("schedule", sch)
		}),
	}
	cmd.Flags().StringVar(&id, "id", "", "stack id")
	cmd.Flags().StringVar(&sch, "schedule", "", "schedule id")
	required(cmd, "id", "schedule")
	return cmd
}

func (a *app) printSchedules(list []apiv1.Schedule, v any) error {
	return a.print(v, func(w io.Writer) {
		row(w, "ID", "KIND", "WHEN", "TIMEZONE", "NEXT", "STATUS", "LAST RUN", "NOTE")
		for _, s := range list {
			when := strings.Join(s.Cron, "; ")
			if s.Kind == "delete" {
				when = fmtTimePtr(s.At) + map[bool]string{true: ", destroying the resources", false: ", keeping the resources"}[s.DeleteResources]
			}
			if s.Kind == "task" {
				when += " -- " + s.Command
			}
			row(w, s.ID, s.Kind, when, s.Timezone, fmtTimePtr(s.NextRunAt), s.Status, orDash(s.LastRun), orDash(s.LastNote))
		}
	})
}

// driftCommand is `gantry drift`.
func (a *app) driftCommand() *cobra.Command {
	return group("drift", "See and reconcile drift across stacks",
		a.driftList(), a.driftShow(), a.driftReconcile())
}

func (a *app) driftList() *cobra.Command {
	var (
		opts  client.DriftListOptions
		limit int
	)
	cmd := &cobra.Command{
		Use:   "list [--space S] [--cloud aws|azure|google] [--status drifted|clean|failed|unchecked]",
		Short: "The drift status of every stack with drift detection",
		Args:  cobra.NoArgs,
		RunE: a.withClient(func(ctx context.Context, c *client.Client, _ []string) error {
			items, err := collect(limit, func(o client.ListOptions) (apiv1.List[apiv1.StackDrift], error) {
				opts.ListOptions = o
				return c.ListDrift(ctx, opts)
			})
			if err != nil {
				return err
			}
			return a.print(items, func(w io.Writer) {
				row(w, "STACK", "SPACE", "STATUS", "DRIFTED", "SINCE", "LAST CHECKED", "LAST GOOD CHECK", "CLOUDS", "PENDING CHANGES")
				for _, s := range items {
					row(w, s.Stack, s.Space, s.Status, s.Drifted, fmtTimePtr(s.Since), fmtTimePtr(s.LastCheckedAt), fmtTimePtr(s.LastGoodAt),
						joinOrDash(s.Clouds), s.PendingChanges)
				}
			})
		}),
	}
	f := cmd.Flags()
	f.StringVar(&opts.Space, "space", "", "only stacks of this space")
	f.StringVar(&opts.Cloud, "cloud", "", "only stacks with resources of this cloud (aws, azure, google, or a provider type)")
	f.StringVar(&opts.Status, "status", "", "only stacks in this status")
	f.IntVar(&limit, "limit", 0, "list at most this many (default: all)")
	return cmd
}

func (a *app) driftShow() *cobra.Command {
	var id string
	cmd := &cobra.Command{
		Use:   "show --stack S",
		Short: "A stack's drift down to the attribute, with its history",
		Args:  cobra.NoArgs,
		RunE: a.withClient(func(ctx context.Context, c *client.Client, _ []string) error {
			d, err := c.ShowDrift(ctx, id)
			if err != nil {
				return err
			}
			return a.print(d, func(w io.Writer) {
				field(w, "Stack", d.Stack)
				field(w, "Status", d.Status)
				field(w, "Drifted resources", d.Drifted)
				field(w, "Since", fmtTimePtr(d.Since))
				field(w, "Last checked", fmtTimePtr(d.LastCheckedAt))
				field(w, "Last run", d.LastRun)
				if d.Status == "failed" {
					field(w, "Last check error", d.Error)
					field(w, "Last good check", fmtTimePtr(d.LastGoodAt))
					field(w, "Last good run", orDash(d.LastGoodRun))
				}
				field(w, "Pending changes", d.PendingChanges)
				if len(d.Resources) > 0 {
					fmt.Fprintln(w, "\nDRIFTED\tACTION\tCLOUD\tSINCE\tATTRIBUTES")
					for _, r := range d.Resources {
						row(w, r.Address, r.Action, r.Cloud, fmtTime(r.FirstDetectedAt), attrs(r.Attributes))
					}
				}
				if len(d.History) > 0 {
					fmt.Fprintln(w, "\nRESOLVED\tACTION\tDETECTED\tRESOLVED\tATTRIBUTES")
					for _, r := range d.History {
						row(w, r.Address, r.Action, fmtTime(r.FirstDetectedAt), fmtTimePtr(r.ResolvedAt), attrs(r.Attributes))
					}
				}
			})
		}),
	}
	cmd.Flags().StringVar(&id, "stack", "", "stack id")
	required(cmd, "stack")
	return cmd
}

// attrs shows attribute changes as name: before -> after.
func attrs(l []apiv1.DriftAttribute) string {
	var out []string
	for _, a := range l {
		if a.Sensitive {
			out = append(out, a.Name+": (sensitive)")
			continue
		}
		out = append(out, fmt.Sprintf("%s: %s -> %s", a.Name, orNull(a.Before), orNull(a.After)))
	}
	if len(out) == 0 {
		return "-"
	}
	return strings.Join(out, "; ")
}

func orNull(b []byte) string {
	if len(b) == 0 {
		return "null"
	}
	return string(b)
}

func (a *app) driftReconcile() *cobra.Command {
	var (
		id        string
		resources []string
		wait      bool
	)
	cmd := &cobra.Command{
		Use:   "reconcile --stack S [--resource ADDR]... [--wait]",
		Short: "Queue a tracked run that applies the configuration back (to the chosen resources)",
		Args:  cobra.NoArgs,
		RunE: a.withClient(func(ctx context.Context, c *client.Client, _ []string) error {
			run, err := c.ReconcileDrift(ctx, id, resources)
			if err != nil {
				return err
			}
			return a.finish(ctx, c, run, wait)
		}),
	}
	f := cmd.Flags()
	f.StringVar(&id, "stack", "", "stack id")
	f.StringArrayVar(&resources, "resource", nil, "a drifted resource's address (repeatable; default: the whole configuration)")
	f.BoolVar(&wait, "wait", false, "wait until the run ends or needs a confirmation")
	required(cmd, "stack")
	return cmd
}
