package cli

import (
	"fmt"
	"io"
	"maps"
	"slices"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/gantry-iac/gantry/internal/audit"
	"github.com/gantry-iac/gantry/internal/bytesize"
	"github.com/gantry-iac/gantry/internal/retention"
)

func pruneCommand() *cobra.Command {
	var databaseURL, dataDir string
	var pol retention.Policy
	var dry bool
	cmd := &cobra.Command{
		Use:   "prune",
		Short: "Delete (or, with --dry-run, count) the runs and state versions past the retention, once",
		Long: `Delete the runs and state versions that gantry server's retention
(--run-retention, --state-retention-versions) would delete at its next pass,
once, on the server's database; with --dry-run, only say what that is, per
stack, deleting nothing. The flags and variables are the server's
(GANTRY_RUN_RETENTION, GANTRY_STATE_RETENTION_VERSIONS). Runs may go on
while it works: it deletes in small transactions, one server or command at
a time, and records what it deleted in the audit trail (run.prune,
state.prune, actor gantry). What is always kept: docs/operations.md,
Retention.`,
		Example: `  gantry admin prune --data-dir ./gantry-data --run-retention 720h --state-retention-versions 20 --dry-run
  gantry admin prune --database-url postgres://... --run-retention 720h`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if databaseURL == "" && dataDir == "" {
				return usageErrorf("--database-url or --data-dir is required")
			}
			if err := pol.Check(); err != nil {
				return usageErrorf("%v", err)
			}
			if !pol.Enabled() {
				return usageErrorf("nothing to prune: give --run-retention or --state-retention-versions (0 keeps everything)")
			}
			d, err := openAdminDB(cmd, databaseURL, dataDir)
			if err != nil {
				return err
			}
			defer d.Close()
			p := retention.New(d, nil)
			var res retention.Result
			if dry {
				res, err = p.DryRun(cmd.Context(), pol)
			} else {
				p.Audit = audit.NewService(d, nil).Hook()
				res, err = p.Prune(cmd.Context(), pol)
			}
			printPruned(cmd.OutOrStdout(), pol, res, dry)
			return err
		},
	}
	f := cmd.Flags()
	f.StringVar(&databaseURL, "database-url", "", "postgres://... of the server's database (empty: SQLite in --data-dir)")
	f.StringVar(&dataDir, "data-dir", "", "the server's data directory, holding gantry.db (SQLite)")
	f.DurationVar(&pol.RunAge, "run-retention", 0, "delete the runs that ended longer ago than this (e.g. 720h; 0: keep every run; at least 1h)")
	f.IntVar(&pol.StateVersions, "state-retention-versions", 0, "keep the newest N state versions of each stack, the current one always (0: keep every version)")
	f.BoolVar(&dry, "dry-run", false, "only say what would be deleted")
	return cmd
}

// printPruned says what a pass deleted, or would delete, in all and per
// stack.
func printPruned(out io.Writer, pol retention.Policy, res retention.Result, dry bool) {
	verb := "Deleted"
	if dry {
		verb = "Would delete"
	}
	if pol.RunAge > 0 {
		fmt.Fprintf(out, "%s %d runs that ended before %s (run retention %s), with %s of logs.\n", verb, res.Runs,
			res.EndedBefore.UTC().Format(time.RFC3339), pol.RunAge, bytesize.Format(res.RunLogBytes))
	}
	if pol.StateVersions > 0 {
		fmt.Fprintf(out, "%s %d state versions (%s) beyond the newest %d of each stack.\n", verb, res.StateVersions,
			bytesize.Format(res.StateBytes), pol.StateVersions)
	}
	if len(res.ByStack) == 0 {
		return
	}
	fmt.Fprintln(out)
	w := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	row(w, "STACK", "RUNS", "LOGS", "STATE VERSIONS", "STATE SIZE")
	for _, st := range slices.Sorted(maps.Keys(res.ByStack)) {
		c := res.ByStack[st]
		row(w, st, c.Runs, bytesize.Format(c.RunLogBytes), c.StateVersions, bytesize.Format(c.StateBytes))
	}
	w.Flush()
}
