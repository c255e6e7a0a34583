package cli

import (
	"context"
	"io"

	"github.com/spf13/cobra"

	"github.com/gantry-iac/gantry/internal/client"
)

// whoamiCommand is `gantry whoami`: who the server takes the caller for.
func (a *app) whoamiCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "whoami",
		Short: "Show who the server takes you for (API key, name, admin)",
		Args:  cobra.NoArgs,
		RunE: a.withClient(func(ctx context.Context, c *client.Client, _ []string) error {
			me, err := c.Whoami(ctx)
			if err != nil {
				return err
			}
			return a.print(me, func(w io.Writer) {
				field(w, "Actor", me.Actor)
				field(w, "Kind", me.Kind)
				field(w, "ID", me.ID)
				field(w, "Name", me.Name)
				field(w, "Admin", me.Admin)
				field(w, "Roles", joinOrDash(me.Roles))
			})
		}),
	}
}
