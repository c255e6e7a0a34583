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

func (a *app) envCommand() *cobra.Command {
	return group("env", "Manage a stack's environment variables",
		a.envSet(), a.envList(), a.envDelete())
}

func (a *app) envSet() *cobra.Command {
	var (
		id     string
		secret bool
	)
	cmd := &cobra.Command{
		Use:   "set --id ID NAME VALUE",
		Short: "Set an environment variable (VALUE - reads it from standard input)",
		Args:  namedArgs(2, "variable name"),
		RunE: a.withClient(func(ctx context.Context, c *client.Client, args []string) error {
			value := args[1]
			if value == "-" {
				b, err := io.ReadAll(a.stdin)
				if err != nil {
					return err
				}
				value = strings.TrimRight(string(b), "\r\n")
			}
			v, err := c.SetEnv(ctx, id, args[0], apiv1.EnvVarSet{Value: value, Secret: secret})
			if err != nil {
				return err
			}
			return a.printEnv([]apiv1.EnvVar{v}, v)
		}),
	}
	cmd.Flags().StringVar(&id, "id", "", "stack id")
	cmd.Flags().BoolVar(&secret, "secret", false, "write-only value, masked in logs")
	// spacectl's name for it.
	cmd.Flags().BoolVar(&secret, "write-only", false, "the same as --secret (spacectl's name)")
	_ = cmd.Flags().MarkHidden("write-only")
	required(cmd, "id")
	return cmd
}

func (a *app) envList() *cobra.Command {
	var id string
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List the effective environment: the stack's variables and its contexts', where each comes from (secrets masked, with their SHA-256)",
		Args:  cobra.NoArgs,
		RunE: a.withClient(func(ctx context.Context, c *client.Client, _ []string) error {
			eff, err := c.EffectiveEnv(ctx, id)
			if err != nil {
				return err
			}
			return a.printEffectiveEnv(eff)
		}),
	}
	cmd.Flags().StringVar(&id, "id", "", "stack id")
	required(cmd, "id")
	return cmd
}

func (a *app) envDelete() *cobra.Command {
	var id string
	cmd := &cobra.Command{
		Use:   "delete --id ID NAME",
		Short: "Delete an environment variable",
		Args:  namedArgs(1, "variable name"),
		RunE: a.withClient(func(ctx context.Context, c *client.Client, args []string) error {
			if err := c.DeleteEnv(ctx, id, args[0]); err != nil {
				return err
			}
			return a.deleted("environment variable", args[0])
		}),
	}
	cmd.Flags().StringVar(&id, "id", "", "stack id")
	required(cmd, "id")
	return cmd
}

// namedArgs accepts n arguments, the first a non-empty name of what: an
// empty one would make a request to no route ("no route PUT .../env/").
func namedArgs(n int, what string) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if err := cobra.ExactArgs(n)(cmd, args); err != nil {
			return err
		}
		if strings.TrimSpace(args[0]) == "" {
			return fmt.Errorf("a %s is required", what)
		}
		return nil
	}
}

// printEnv prints vars as a table, or jsonValue as JSON; secret values never
// show in the table, whatever the server sent.
func (a *app) printEnv(vars []apiv1.EnvVar, jsonValue any) error {
	return a.print(jsonValue, func(w io.Writer) {
		row(w, "NAME", "VALUE", "SECRET")
		for _, v := range vars {
			value := v.Value
			if v.Secret {
				value = "*****"
			}
			row(w, v.Name, value, v.Secret)
		}
	})
}
