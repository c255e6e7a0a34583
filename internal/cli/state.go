package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strconv"

	"github.com/spf13/cobra"

	"github.com/gantry-iac/gantry/internal/apiv1"
	"github.com/gantry-iac/gantry/internal/client"
)

func (a *app) outputsCommand() *cobra.Command {
	var id, only string
	cmd := &cobra.Command{
		Use:   "outputs",
		Short: "Show the outputs of the stack's current state",
		Args:  cobra.NoArgs,
		RunE: a.withClient(func(ctx context.Context, c *client.Client, _ []string) error {
			l, err := c.Outputs(ctx, id)
			if err != nil {
				return err
			}
			outs := orEmpty(l.Items)
			if only != "" {
				outs = slices.DeleteFunc(outs, func(o apiv1.Output) bool { return o.Name != only })
				if len(outs) == 0 {
					return fmt.Errorf("not_found: stack %q has no output %q", id, only)
				}
			}
			return a.print(outs, func(w io.Writer) {
				// The value last: a table pads a column to its widest
				// cell, and a value may be megabytes long.
				row(w, "NAME", "SENSITIVE", "VALUE")
				for _, o := range outs {
					row(w, o.Name, o.Sensitive, outputValue(o))
				}
			})
		}),
	}
	cmd.Flags().StringVar(&id, "id", "", "stack id")
	cmd.Flags().StringVar(&only, "output-id", "", "only the output of this name (spacectl's --output-id)")
	required(cmd, "id")
	return cmd
}

// outputValue renders an output for a table: strings as they are, other
// values as compact JSON, sensitive ones hidden.
func outputValue(o apiv1.Output) string {
	if o.Sensitive {
		return "(sensitive)"
	}
	if s, ok := o.Value.(string); ok {
		return s
	}
	b, err := json.Marshal(o.Value)
	if err != nil {
		return "?"
	}
	return string(b)
}

func (a *app) stateCommand() *cobra.Command {
	return group("state", "Inspect and roll back the stack's state",
		a.stateList(), a.stateShow(), a.stateRollback())
}

func (a *app) stateList() *cobra.Command {
	var id string
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List the stored state versions",
		Args:  cobra.NoArgs,
		RunE: a.withClient(func(ctx context.Context, c *client.Client, _ []string) error {
			l, err := c.StateVersions(ctx, id)
			if err != nil {
				return err
			}
			versions := orEmpty(l.Items)
			return a.print(versions, func(w io.Writer) {
				row(w, "SERIAL", "CURRENT", "CREATED", "BY", "RUN", "SIZE", "CHECKSUM")
				for _, v := range versions {
					current := ""
					if v.Current {
						current = "*"
					}
					row(w, v.Serial, current, fmtTime(v.CreatedAt), orDash(v.CreatedBy), orDash(v.Run), v.Size, shortSum(v.Checksum))
				}
			})
		}),
	}
	cmd.Flags().StringVar(&id, "id", "", "stack id")
	required(cmd, "id")
	return cmd
}

func shortSum(s string) string {
	if len(s) > 12 {
		return s[:12]
	}
	return orDash(s)
}

func (a *app) stateShow() *cobra.Command {
	var id, serial string
	cmd := &cobra.Command{
		Use:   "show",
		Short: "Print a state document (JSON)",
		Args:  cobra.NoArgs,
		RunE: a.withClient(func(ctx context.Context, c *client.Client, _ []string) error {
			if serial != "current" {
				if _, err := strconv.ParseInt(serial, 10, 64); err != nil {
					return usageErrorf("invalid --serial %q: want a number or current", serial)
				}
			}
			doc, err := c.StateVersion(ctx, id, serial)
			if err != nil {
				return err
			}
			if len(doc) > 0 && doc[len(doc)-1] != '\n' {
				doc = append(doc, '\n')
			}
			_, err = a.stdout.Write(doc)
			return err
		}),
	}
	cmd.Flags().StringVar(&id, "id", "", "stack id")
	cmd.Flags().StringVar(&serial, "serial", "current", "serial of the version, or current")
	required(cmd, "id")
	return cmd
}

func (a *app) stateRollback() *cobra.Command {
	var (
		id     string
		serial int64
	)
	cmd := &cobra.Command{
		Use:   "rollback",
		Short: "Make a copy of an older state version the current one",
		Args:  cobra.NoArgs,
		RunE: a.withClient(func(ctx context.Context, c *client.Client, _ []string) error {
			v, err := c.RollbackState(ctx, id, apiv1.StateRollback{Serial: serial})
			if err != nil {
				return err
			}
			return a.print(v, func(w io.Writer) {
				field(w, "Serial", v.Serial)
				field(w, "Lineage", v.Lineage)
				field(w, "Checksum", v.Checksum)
				field(w, "Size", v.Size)
				field(w, "Created", fmtTime(v.CreatedAt))
				field(w, "By", v.CreatedBy)
				field(w, "Current", v.Current)
			})
		}),
	}
	cmd.Flags().StringVar(&id, "id", "", "stack id")
	cmd.Flags().Int64Var(&serial, "serial", 0, "serial of the version to restore")
	required(cmd, "id", "serial")
	return cmd
}
