package cli

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"maps"
	"sort"
	"time"

	"github.com/spf13/cobra"

	"github.com/gantry-iac/gantry/internal/apiv1"
	"github.com/gantry-iac/gantry/internal/client"
)

// workerpoolCommand is `gantry workerpool`: pools of private workers.
func (a *app) workerpoolCommand() *cobra.Command {
	cmd := group("workerpool", "Manage worker pools of private workers (create and reset show the token once)",
		a.workerpoolCreate(), a.workerpoolList(), a.workerpoolShow(), a.workerpoolUpdate(),
		a.workerpoolDelete(), a.workerpoolReset(), a.workerpoolWorkers(), a.workerpoolKeygen())
	cmd.Long = `Manage worker pools: named groups of private workers in a space. A pool's
token lets ` + "`gantry worker`" + ` register and run the jobs of the stacks that name the
pool (gantry stack create/update --worker-pool). Stacks that name no pool run
on the server's built-in pool, which the workers commands call "builtin".`
	return cmd
}

// orBuiltin names the built-in pool of stacks that name none.
func orBuiltin(pool string) string {
	if pool == "" {
		return apiv1.BuiltinPool
	}
	return pool
}

// printPoolToken prints a pool with its token and the warning to store it.
func (a *app) printPoolToken(p apiv1.WorkerPoolToken, what string) error {
	// With -o json the whole object, token included.
	return a.print(p, func(w io.Writer) {
		poolFields(w, p.WorkerPool)
		fmt.Fprintln(w)
		fmt.Fprintf(w, "Store this %s now: it is shown only this once and cannot be retrieved again.\n", what)
		fmt.Fprintf(w, "Start workers with: GANTRY_TOKEN_FILE=<file holding the token> gantry worker --server URL (a --token on the command line is visible to other processes)\n")
		fmt.Fprintln(w, p.Token)
	})
}

func poolFields(w io.Writer, p apiv1.WorkerPool) {
	field(w, "ID", p.ID)
	field(w, "Name", p.Name)
	field(w, "Space", p.Space)
	field(w, "Labels", joinOrDash(p.Labels))
	field(w, "Description", p.Description)
	if p.DriftRunLimit > 0 {
		field(w, "Drift run limit", p.DriftRunLimit)
	}
	field(w, "Created", fmtTime(p.CreatedAt))
	field(w, "Updated", fmtTime(p.UpdatedAt))
}

func (a *app) workerpoolCreate() *cobra.Command {
	var in apiv1.WorkerPoolCreate
	cmd := &cobra.Command{
		Use:   "create",
		Short: "Create a worker pool and print its token, once",
		Args:  cobra.NoArgs,
		RunE: a.withClient(func(ctx context.Context, c *client.Client, _ []string) error {
			in.Labels = nonEmpty(in.Labels)
			p, err := c.CreateWorkerPool(ctx, in)
			if err != nil {
				return err
			}
			return a.printPoolToken(p, "pool token")
		}),
	}
	f := cmd.Flags()
	f.StringVar(&in.ID, "id", "", `pool id (a slug; not "builtin")`)
	f.StringVar(&in.Name, "name", "", "display name (default: the id)")
	f.StringVar(&in.Space, "space", "", "space of the pool: its stacks and those of the spaces inheriting from it may use the pool")
	f.StringArrayVar(&in.Labels, "label", nil, "label (repeatable)")
	f.StringVar(&in.Description, "description", "", "description")
	f.IntVar(&in.DriftRunLimit, "drift-run-limit", 0, "at most this many drift detection runs of the pool at once; due ones beyond are skipped with a note (0: no limit)")
	required(cmd, "id", "space")
	return cmd
}

func (a *app) workerpoolList() *cobra.Command {
	var space string
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List worker pools (never their tokens)",
		Args:  cobra.NoArgs,
		RunE: a.withClient(func(ctx context.Context, c *client.Client, _ []string) error {
			l, err := c.ListWorkerPools(ctx, space)
			if err != nil {
				return err
			}
			return a.print(orEmpty(l.Items), func(w io.Writer) {
				row(w, "ID", "NAME", "SPACE", "LABELS", "DESCRIPTION")
				for _, p := range l.Items {
					row(w, p.ID, p.Name, p.Space, joinOrDash(p.Labels), orDash(firstLine(p.Description)))
				}
			})
		}),
	}
	cmd.Flags().StringVar(&space, "space", "", "only the pools of this space")
	return cmd
}

// poolWithWorkers is what `workerpool show -o json` prints.
type poolWithWorkers struct {
	apiv1.WorkerPool
	Workers []apiv1.Worker `json:"workers"`
}

func (a *app) workerpoolShow() *cobra.Command {
	var id string
	cmd := &cobra.Command{
		Use:   "show",
		Short: "Show a worker pool and its workers",
		Args:  cobra.NoArgs,
		RunE: a.withClient(func(ctx context.Context, c *client.Client, _ []string) error {
			// The built-in pool has workers but no pool record.
			p := apiv1.WorkerPool{ID: apiv1.BuiltinPool, Name: "Built-in pool (stacks that name no pool)", Space: "root", Labels: []string{}}
			if id != apiv1.BuiltinPool {
				var err error
				if p, err = c.GetWorkerPool(ctx, id); err != nil {
					return err
				}
			}
			ws, err := c.ListWorkers(ctx, id)
			if err != nil {
				return err
			}
			now := time.Now()
			return a.print(poolWithWorkers{p, orEmpty(ws.Items)}, func(w io.Writer) {
				poolFields(w, p)
				fmt.Fprintln(w)
				if len(ws.Items) == 0 {
					fmt.Fprintln(w, "No workers registered.")
					return
				}
				workerTable(w, ws.Items, now)
			})
		}),
	}
	cmd.Flags().StringVar(&id, "id", "", `pool id ("builtin" for the server's built-in pool)`)
	required(cmd, "id")
	return cmd
}

func (a *app) workerpoolUpdate() *cobra.Command {
	var (
		id, name, description string
		labels                []string
		driftLimit            int
	)
	cmd := &cobra.Command{
		Use:   "update",
		Short: "Change a worker pool (only the flags given)",
		Args:  cobra.NoArgs,
	}
	cmd.RunE = a.withClient(func(ctx context.Context, c *client.Client, _ []string) error {
		f := cmd.Flags()
		var in apiv1.WorkerPoolUpdate
		if f.Changed("name") {
			in.Name = &name
		}
		if f.Changed("description") {
			in.Description = &description
		}
		if f.Changed("label") {
			l := nonEmpty(labels)
			in.Labels = &l
		}
		if f.Changed("drift-run-limit") {
			in.DriftRunLimit = &driftLimit
		}
		if in == (apiv1.WorkerPoolUpdate{}) {
			return usageErrorf("nothing to update: give at least one flag besides --id")
		}
		p, err := c.UpdateWorkerPool(ctx, id, in)
		if err != nil {
			return err
		}
		return a.print(p, func(w io.Writer) { poolFields(w, p) })
	})
	f := cmd.Flags()
	f.StringVar(&id, "id", "", "pool id")
	f.StringVar(&name, "name", "", "display name (empty: the id)")
	f.StringArrayVar(&labels, "label", nil, `label (repeatable; replaces all labels, --label "" removes them)`)
	f.StringVar(&description, "description", "", "description")
	f.IntVar(&driftLimit, "drift-run-limit", 0, "at most this many drift detection runs of the pool at once (0: no limit)")
	required(cmd, "id")
	return cmd
}

func (a *app) workerpoolDelete() *cobra.Command {
	var id string
	cmd := &cobra.Command{
		Use:   "delete",
		Short: "Delete a worker pool that no stack uses",
		Args:  cobra.NoArgs,
		RunE: a.withClient(func(ctx context.Context, c *client.Client, _ []string) error {
			if err := c.DeleteWorkerPool(ctx, id); err != nil {
				return err
			}
			return a.deleted("worker pool", id)
		}),
	}
	cmd.Flags().StringVar(&id, "id", "", "pool id")
	required(cmd, "id")
	return cmd
}

func (a *app) workerpoolReset() *cobra.Command {
	var id string
	cmd := &cobra.Command{
		Use:   "reset",
		Short: "Give a worker pool a new token (printed once); its workers must restart with it",
		Long: `Give a worker pool a new token, printed once. The old token stops working at
once and the workers registered with it are removed: restart them with the new
token. Jobs they are running finish with their own job tokens, or fail when
they miss their heartbeats.`,
		Args: cobra.NoArgs,
		RunE: a.withClient(func(ctx context.Context, c *client.Client, _ []string) error {
			p, err := c.ResetWorkerPool(ctx, id)
			if err != nil {
				return err
			}
			return a.printPoolToken(p, "new pool token (the old one no longer works)")
		}),
	}
	cmd.Flags().StringVar(&id, "id", "", "pool id")
	required(cmd, "id")
	return cmd
}

func (a *app) workerpoolWorkers() *cobra.Command {
	var id string
	cmd := &cobra.Command{
		Use:   "workers",
		Short: "List the workers of a pool and their status",
		Long: `List the workers of a pool: IDLE, BUSY (running the jobs listed), DRAINED
(takes no new jobs), or GONE (not heard from within the server's
--worker-timeout). --id builtin lists the server's built-in workers.`,
		Args: cobra.NoArgs,
		RunE: a.withClient(func(ctx context.Context, c *client.Client, _ []string) error {
			ws, err := c.ListWorkers(ctx, id)
			if err != nil {
				return err
			}
			now := time.Now()
			return a.print(orEmpty(ws.Items), func(w io.Writer) { workerTable(w, ws.Items, now) })
		}),
	}
	cmd.Flags().StringVar(&id, "id", "", `pool id ("builtin" for the server's built-in pool)`)
	required(cmd, "id")
	return cmd
}

func workerTable(w io.Writer, ws []apiv1.Worker, now time.Time) {
	row(w, "ID", "NAME", "STATUS", "VERSION", "JOBS", "LAST SEEN", "LABELS", "TOOLS")
	for _, wk := range ws {
		// The version is in tools too ("gantry"): shown once. A server of
		// a release before version sends only the tools.
		tools := maps.Clone(wk.Tools)
		delete(tools, "gantry")
		version := cmp.Or(wk.Version, wk.Tools["gantry"], "-") // "-": a worker of an older release
		row(w, wk.ID, wk.Name, wk.Status, version, joinOrDash(wk.Jobs), ago(wk.LastSeenAt, now), pairs(wk.Labels), pairs(tools))
	}
}

// ago says how long before now t was, to the second.
func ago(t time.Time, now time.Time) string {
	if t.IsZero() {
		return "-"
	}
	d := now.Sub(t).Truncate(time.Second)
	if d < time.Second {
		return "just now"
	}
	return d.String() + " ago"
}

// pairs prints a map as sorted k=v items.
func pairs(m map[string]string) string {
	items := make([]string, 0, len(m))
	for k, v := range m {
		items = append(items, k+"="+v)
	}
	sort.Strings(items)
	return joinOrDash(items)
}
