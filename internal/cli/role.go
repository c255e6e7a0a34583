package cli

import (
	"context"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"

	"github.com/gantry-iac/gantry/internal/apiv1"
	"github.com/gantry-iac/gantry/internal/client"
)

func (a *app) roleCommand() *cobra.Command {
	return group("role", "Roles (sets of actions) and their bindings to users, API keys and IdP groups in spaces",
		a.roleActions(), a.roleList(), a.roleShow(), a.roleCreate(), a.roleDelete(),
		a.roleBind(), a.roleUnbind(), a.roleBindings())
}

func (a *app) userCommand() *cobra.Command {
	return group("user", "Users who signed in with single sign-on", a.userList(), a.userDisable(true), a.userDisable(false))
}

func (a *app) roleActions() *cobra.Command {
	return &cobra.Command{
		Use:   "actions",
		Short: "List the actions roles can hold, with what each allows",
		Args:  cobra.NoArgs,
		RunE: a.withClient(func(ctx context.Context, c *client.Client, _ []string) error {
			l, err := c.ListRoleActions(ctx)
			if err != nil {
				return err
			}
			return a.print(orEmpty(l.Items), func(w io.Writer) {
				row(w, "ACTION", "ALLOWS")
				for _, x := range l.Items {
					allows := x.Allows
					if x.RootOnly {
						allows += " (root space only)"
					}
					row(w, x.Name, allows)
				}
			})
		}),
	}
}

func (a *app) roleList() *cobra.Command {
	return &cobra.Command{
		Use:   "list",
		Short: "List the built-in and custom roles",
		Args:  cobra.NoArgs,
		RunE: a.withClient(func(ctx context.Context, c *client.Client, _ []string) error {
			l, err := c.ListRoles(ctx)
			if err != nil {
				return err
			}
			return a.print(orEmpty(l.Items), func(w io.Writer) {
				row(w, "ID", "NAME", "BUILT-IN", "ACTIONS")
				for _, r := range l.Items {
					row(w, r.ID, r.Name, r.BuiltIn, len(r.Actions))
				}
			})
		}),
	}
}

func (a *app) printRole(r apiv1.Role) error {
	return a.print(r, func(w io.Writer) {
		field(w, "ID", r.ID)
		field(w, "Name", r.Name)
		field(w, "Description", r.Description)
		field(w, "Built-in", r.BuiltIn)
		field(w, "Created by", r.CreatedBy)
		field(w, "Actions", strings.Join(r.Actions, ", "))
	})
}

func (a *app) roleShow() *cobra.Command {
	var id string
	cmd := &cobra.Command{
		Use:   "show",
		Short: "Show a role and its actions",
		Args:  cobra.NoArgs,
		RunE: a.withClient(func(ctx context.Context, c *client.Client, _ []string) error {
			r, err := c.GetRole(ctx, id)
			if err != nil {
				return err
			}
			return a.printRole(r)
		}),
	}
	cmd.Flags().StringVar(&id, "id", "", "role id")
	required(cmd, "id")
	return cmd
}

func (a *app) roleCreate() *cobra.Command {
	var in apiv1.RoleCreate
	cmd := &cobra.Command{
		Use:   "create",
		Short: "Create a custom role",
		Args:  cobra.NoArgs,
		RunE: a.withClient(func(ctx context.Context, c *client.Client, _ []string) error {
			r, err := c.CreateRole(ctx, in)
			if err != nil {
				return err
			}
			return a.printRole(r)
		}),
	}
	f := cmd.Flags()
	f.StringVar(&in.ID, "id", "", "role id: lower-case letters, digits and dashes")
	f.StringVar(&in.Name, "name", "", "display name")
	f.StringVar(&in.Description, "description", "", "what the role is for")
	f.StringArrayVar(&in.Actions, "action", nil, "an action (repeat; see gantry role actions)")
	required(cmd, "id", "action")
	return cmd
}

func (a *app) roleDelete() *cobra.Command {
	var id string
	cmd := &cobra.Command{
		Use:   "delete",
		Short: "Delete a custom role (unbind it first)",
		Args:  cobra.NoArgs,
		RunE: a.withClient(func(ctx context.Context, c *client.Client, _ []string) error {
			if err := c.DeleteRole(ctx, id); err != nil {
				return err
			}
			if a.output == "json" {
				return a.printJSON(map[string]any{"deleted": id})
			}
			fmt.Fprintf(a.stdout, "Deleted role %q.\n", id)
			return nil
		}),
	}
	cmd.Flags().StringVar(&id, "id", "", "role id")
	required(cmd, "id")
	return cmd
}

func (a *app) printBindings(l []apiv1.RoleBinding, v any) error {
	return a.print(v, func(w io.Writer) {
		row(w, "ID", "ROLE", "SPACE", "ACTOR", "CREATED BY", "CREATED")
		for _, b := range l {
			actor := b.Actor
			if actor == "" { // a server older than the field
				actor = b.ActorType + "::" + b.ActorID
			}
			row(w, b.ID, b.Role, b.Space, actor, orDash(b.CreatedBy), fmtTime(b.CreatedAt))
		}
	})
}

func (a *app) roleBind() *cobra.Command {
	var in apiv1.RoleBindingCreate
	cmd := &cobra.Command{
		Use:   "bind",
		Short: "Give a user, an API key or an IdP group a role in a space and its descendants",
		Args:  cobra.NoArgs,
		RunE: a.withClient(func(ctx context.Context, c *client.Client, _ []string) error {
			b, err := c.Bind(ctx, in)
			if err != nil {
				return err
			}
			return a.printBindings([]apiv1.RoleBinding{b}, b)
		}),
	}
	f := cmd.Flags()
	f.StringVar(&in.Role, "role", "", "role id (see gantry role list)")
	f.StringVar(&in.Space, "space", "root", "space id")
	f.StringVar(&in.User, "user", "", "a user: id or login (they must have signed in once)")
	f.StringVar(&in.APIKey, "apikey", "", "an API key: id or name")
	f.StringVar(&in.Group, "group", "", "an IdP group, as the groups claim names it")
	exclusive(cmd, "user", "apikey", "group")
	cmd.MarkFlagsOneRequired("user", "apikey", "group")
	required(cmd, "role")
	return cmd
}

func (a *app) roleUnbind() *cobra.Command {
	var id string
	cmd := &cobra.Command{
		Use:   "unbind",
		Short: "Delete a role binding",
		Args:  cobra.NoArgs,
		RunE: a.withClient(func(ctx context.Context, c *client.Client, _ []string) error {
			if err := c.Unbind(ctx, id); err != nil {
				return err
			}
			if a.output == "json" {
				return a.printJSON(map[string]any{"unbound": id})
			}
			fmt.Fprintf(a.stdout, "Deleted role binding %q.\n", id)
			return nil
		}),
	}
	cmd.Flags().StringVar(&id, "id", "", "binding id (see gantry role bindings)")
	required(cmd, "id")
	return cmd
}

func (a *app) roleBindings() *cobra.Command {
	var space string
	cmd := &cobra.Command{
		Use:   "bindings",
		Short: "List role bindings (of one space with --space)",
		Args:  cobra.NoArgs,
		RunE: a.withClient(func(ctx context.Context, c *client.Client, _ []string) error {
			l, err := c.ListRoleBindings(ctx, space)
			if err != nil {
				return err
			}
			return a.printBindings(l.Items, orEmpty(l.Items))
		}),
	}
	cmd.Flags().StringVar(&space, "space", "", "only this space's bindings")
	return cmd
}

func (a *app) userList() *cobra.Command {
	return &cobra.Command{
		Use:   "list",
		Short: "List users who signed in, with their groups",
		Args:  cobra.NoArgs,
		RunE: a.withClient(func(ctx context.Context, c *client.Client, _ []string) error {
			l, err := c.ListUsers(ctx)
			if err != nil {
				return err
			}
			return a.print(orEmpty(l.Items), func(w io.Writer) {
				row(w, "ID", "LOGIN", "NAME", "GROUPS", "ADMIN", "LAST LOGIN", "DISABLED")
				for _, u := range l.Items {
					row(w, u.ID, u.Login, orDash(u.Name), orDash(strings.Join(u.Groups, ",")), u.Admin, fmtTime(u.LastLoginAt), optTime(u.DisabledAt, "-"))
				}
			})
		}),
	}
}

func (a *app) userDisable(disabled bool) *cobra.Command {
	var id string
	use, short := "enable", "Let a disabled user sign in again"
	if disabled {
		use, short = "disable", "Offboard a user: no more sign-ins; their sessions and own API keys are revoked"
	}
	cmd := &cobra.Command{
		Use:   use,
		Short: short,
		Args:  cobra.NoArgs,
		RunE: a.withClient(func(ctx context.Context, c *client.Client, _ []string) error {
			u, err := c.SetUserDisabled(ctx, id, disabled)
			if err != nil {
				return err
			}
			if a.output == "json" {
				return a.printJSON(u)
			}
			if disabled {
				fmt.Fprintf(a.stdout, "Disabled user %s (%s): signed out everywhere, their own API keys revoked.\n", u.Login, u.ID)
			} else {
				fmt.Fprintf(a.stdout, "Enabled user %s (%s): they may sign in again.\n", u.Login, u.ID)
			}
			return nil
		}),
	}
	cmd.Flags().StringVar(&id, "id", "", "user id or login")
	required(cmd, "id")
	return cmd
}
