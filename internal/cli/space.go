package cli

import (
	"context"
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"github.com/gantry-iac/gantry/internal/apiv1"
	"github.com/gantry-iac/gantry/internal/client"
)

func (a *app) spaceCommand() *cobra.Command {
	return group("space", "Manage spaces",
		a.spaceCreate(), a.spaceList(), a.spaceShow(), a.spaceUpdate(), a.spaceDelete())
}

func (a *app) spaceCreate() *cobra.Command {
	var in apiv1.SpaceCreate
	cmd := &cobra.Command{
		Use:   "create",
		Short: "Create a space",
		Args:  cobra.NoArgs,
		RunE: a.withClient(func(ctx context.Context, c *client.Client, _ []string) error {
			in.Labels = nonEmpty(in.Labels)
			s, err := c.CreateSpace(ctx, in)
			if err != nil {
				return err
			}
			return a.printSpace(s)
		}),
	}
	f := cmd.Flags()
	f.StringVar(&in.ID, "id", "", "space id (a slug)")
	f.StringVar(&in.Name, "name", "", "display name (default: the id)")
	f.StringVar(&in.Parent, "parent", "", "parent space (default root)")
	f.BoolVar(&in.Inherit, "inherit", false, "inherit from the parent: use its contexts, policies, worker pools and integrations")
	f.StringArrayVar(&in.Labels, "label", nil, "label (repeatable)")
	f.StringVar(&in.Description, "description", "", "description")
	required(cmd, "id")
	return cmd
}

func (a *app) spaceList() *cobra.Command {
	var limit int
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List spaces",
		Args:  cobra.NoArgs,
		RunE: a.withClient(func(ctx context.Context, c *client.Client, _ []string) error {
			spaces, err := collect(limit, func(o client.ListOptions) (apiv1.List[apiv1.Space], error) {
				return c.ListSpaces(ctx, o)
			})
			if err != nil {
				return err
			}
			return a.print(spaces, func(w io.Writer) {
				row(w, "ID", "NAME", "PARENT", "INHERIT", "LABELS")
				for _, s := range spaces {
					row(w, s.ID, s.Name, orDash(s.Parent), s.Inherit, joinOrDash(s.Labels))
				}
			})
		}),
	}
	cmd.Flags().IntVar(&limit, "limit", 0, "list at most this many (default: all)")
	return cmd
}

func (a *app) spaceShow() *cobra.Command {
	var id string
	cmd := &cobra.Command{
		Use:   "show",
		Short: "Show a space",
		Args:  cobra.NoArgs,
		RunE: a.withClient(func(ctx context.Context, c *client.Client, _ []string) error {
			s, err := c.GetSpace(ctx, id)
			if err != nil {
				return err
			}
			return a.printSpace(s)
		}),
	}
	cmd.Flags().StringVar(&id, "id", "", "space id")
	required(cmd, "id")
	return cmd
}

func (a *app) spaceUpdate() *cobra.Command {
	var (
		id, name, description string
		inherit               bool
		labels                []string
	)
	cmd := &cobra.Command{
		Use:   "update",
		Short: "Change a space (only the flags given)",
		Args:  cobra.NoArgs,
	}
	cmd.RunE = a.withClient(func(ctx context.Context, c *client.Client, _ []string) error {
		f := cmd.Flags()
		var in apiv1.SpaceUpdate
		if f.Changed("name") {
			in.Name = &name
		}
		if f.Changed("inherit") {
			in.Inherit = &inherit
		}
		if f.Changed("label") {
			l := nonEmpty(labels)
			in.Labels = &l
		}
		if f.Changed("description") {
			in.Description = &description
		}
		if in == (apiv1.SpaceUpdate{}) {
			return usageErrorf("nothing to update: give at least one of --name, --inherit, --label, --description")
		}
		s, err := c.UpdateSpace(ctx, id, in)
		if err != nil {
			return err
		}
		return a.printSpace(s)
	})
	f := cmd.Flags()
	f.StringVar(&id, "id", "", "space id")
	f.StringVar(&name, "name", "", "display name")
	f.BoolVar(&inherit, "inherit", false, "inherit from the parent: use its contexts, policies, worker pools and integrations")
	f.StringArrayVar(&labels, "label", nil, `label (repeatable; replaces all labels; --label "" removes them)`)
	f.StringVar(&description, "description", "", "description")
	required(cmd, "id")
	return cmd
}

func (a *app) spaceDelete() *cobra.Command {
	var id string
	cmd := &cobra.Command{
		Use:   "delete",
		Short: "Delete a space",
		Args:  cobra.NoArgs,
		RunE: a.withClient(func(ctx context.Context, c *client.Client, _ []string) error {
			if err := c.DeleteSpace(ctx, id); err != nil {
				return err
			}
			return a.deleted("space", id)
		}),
	}
	cmd.Flags().StringVar(&id, "id", "", "space id")
	required(cmd, "id")
	return cmd
}

func (a *app) printSpace(s apiv1.Space) error {
	return a.print(s, func(w io.Writer) {
		field(w, "ID", s.ID)
		field(w, "Name", s.Name)
		field(w, "Parent", orDash(s.Parent))
		field(w, "Inherit", s.Inherit)
		field(w, "Labels", joinOrDash(s.Labels))
		field(w, "Description", s.Description)
		field(w, "Created", fmtTime(s.CreatedAt))
		field(w, "Updated", fmtTime(s.UpdatedAt))
	})
}

// deleted reports a deletion: a line in a table, {"deleted": id} in JSON.
func (a *app) deleted(kind, id string) error {
	if a.output == "json" {
		return a.printJSON(map[string]string{"deleted": id, "kind": kind})
	}
	_, err := fmt.Fprintf(a.stdout, "Deleted %s %q.\n", kind, id)
	return err
}

// collect reads pages until the last one, or until limit items when limit > 0.
func collect[T any](limit int, page func(client.ListOptions) (apiv1.List[T], error)) ([]T, error) {
	items := []T{}
	var opts client.ListOptions
	for {
		if limit > 0 {
			opts.Limit = limit - len(items)
		}
		l, err := page(opts)
		if err != nil {
			return nil, err
		}
		items = append(items, l.Items...)
		if l.NextCursor == "" || l.NextCursor == opts.Cursor || (limit > 0 && len(items) >= limit) {
			break
		}
		opts.Cursor = l.NextCursor
	}
	if limit > 0 && len(items) > limit {
		items = items[:limit]
	}
	return items, nil
}
