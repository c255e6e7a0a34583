package cli

import (
	"context"
	"fmt"
	"io"
	"sort"
	"strings"

	"github.com/spf13/cobra"

	"github.com/gantry-iac/gantry/internal/apiv1"
	"github.com/gantry-iac/gantry/internal/client"
)

func (a *app) integrationCommand() *cobra.Command {
	return group("integration", "Cloud integrations: short-lived cloud credentials for runs (docs/credentials.md)",
		a.integrationCreate(), a.integrationUpdate(), a.integrationShow(), a.integrationList(), a.integrationDelete(),
		a.integrationAttach(), a.integrationDetach(),
		group("aws", "AWS integrations", a.integrationAWSTrust()),
		group("oidc", "The runs' OIDC tokens and the clouds that trust them", a.integrationOIDCSetup()))
}

// settings parses --set key=value flags.
func settings(list []string) (map[string]string, error) {
	out := map[string]string{}
	for _, kv := range list {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return nil, usageErrorf("--set %q: want key=value", kv)
		}
		out[k] = v
	}
	return out, nil
}

func (a *app) printIntegration(in apiv1.Integration, atts []apiv1.IntegrationAttachment) error {
	var v any = in
	if atts != nil {
		v = struct {
			apiv1.Integration
			Attachments []apiv1.IntegrationAttachment `json:"attachments"`
		}{in, atts}
	}
	return a.print(v, func(w io.Writer) {
		field(w, "ID", in.ID)
		field(w, "Name", in.Name)
		field(w, "Space", in.Space)
		field(w, "Type", in.Type)
		keys := make([]string, 0, len(in.Config))
		for k := range in.Config {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			field(w, "  "+k, in.Config[k])
		}
		field(w, "Labels", joinOrDash(in.Labels))
		field(w, "Description", in.Description)
		for _, at := range atts {
			var scopes []string
			if at.Read {
				scopes = append(scopes, "read")
			}
			if at.Write {
				scopes = append(scopes, "write")
			}
			how := strings.Join(scopes, ", ")
			if at.Via != "" && at.Via != "explicit" {
				how += "; via " + at.Via
			}
			if at.NotApplied != "" {
				how += "; " + at.NotApplied
			}
			field(w, "Attached", at.Stack+" ("+how+")")
		}
	})
}

func (a *app) integrationCreate() *cobra.Command {
	var in apiv1.IntegrationCreate
	var set []string
	cmd := &cobra.Command{
		Use:   "create",
		Short: "Create a cloud integration",
		Example: `  gantry integration create --id aws-prod --space prod --type aws \
      --set role_arn=arn:aws:iam::123456789012:role/gantry --set region=eu-west-1`,
		Args: cobra.NoArgs,
		RunE: a.withClient(func(ctx context.Context, c *client.Client, _ []string) error {
			cfg, err := settings(set)
			if err != nil {
				return err
			}
			in.Config, in.Labels = cfg, nonEmpty(in.Labels)
			out, err := c.CreateIntegration(ctx, in)
			if err != nil {
				return err
			}
			return a.printIntegration(out, nil)
		}),
	}
	f := cmd.Flags()
	f.StringVar(&in.ID, "id", "", "integration id (a slug)")
	f.StringVar(&in.Name, "name", "", "display name (default: the id)")
	f.StringVar(&in.Space, "space", "", "space (default root)")
	f.StringVar(&in.Type, "type", "", "aws, azure, gcp, vault or oidc")
	f.StringArrayVar(&set, "set", nil, "a setting key=value (repeatable; see docs/credentials.md)")
	f.StringArrayVar(&in.Labels, "label", nil, `label (repeatable; "autoattach:<stack label>" or "autoattach:*")`)
	f.StringVar(&in.Description, "description", "", "description")
	required(cmd, "id", "type")
	return cmd
}

func (a *app) integrationUpdate() *cobra.Command {
	var id, name, desc string
	var set, unset, lbl []string
	cmd := &cobra.Command{
		Use:   "update",
		Short: "Change a cloud integration (--set adds or changes settings, --unset removes them)",
		Args:  cobra.NoArgs,
	}
	cmd.RunE = a.withClient(func(ctx context.Context, c *client.Client, _ []string) error {
		var u apiv1.IntegrationUpdate
		f := cmd.Flags()
		if f.Changed("name") {
			u.Name = &name
		}
		if f.Changed("description") {
			u.Description = &desc
		}
		if f.Changed("label") {
			l := nonEmpty(lbl)
			u.Labels = &l
		}
		if len(set) > 0 || len(unset) > 0 {
			cur, err := c.GetIntegration(ctx, id)
			if err != nil {
				return err
			}
			cfg, err := settings(set)
			if err != nil {
				return err
			}
			for k, v := range cur.Config {
				if _, ok := cfg[k]; !ok {
					cfg[k] = v
				}
			}
			for _, k := range unset {
				delete(cfg, k)
			}
			u.Config = &cfg
		}
		if u == (apiv1.IntegrationUpdate{}) {
			return usageErrorf("nothing to change: give --name, --description, --label, --set or --unset")
		}
		out, err := c.UpdateIntegration(ctx, id, u)
		if err != nil {
			return err
		}
		return a.printIntegration(out, nil)
	})
	f := cmd.Flags()
	f.StringVar(&id, "id", "", "integration id")
	f.StringVar(&name, "name", "", "display name")
	f.StringVar(&desc, "description", "", "description")
	f.StringArrayVar(&set, "set", nil, "a setting key=value (repeatable)")
	f.StringArrayVar(&unset, "unset", nil, "a setting to remove (repeatable)")
	f.StringArrayVar(&lbl, "label", nil, "labels (replace all; repeatable)")
	required(cmd, "id")
	return cmd
}

func (a *app) integrationShow() *cobra.Command {
	var id string
	cmd := &cobra.Command{
		Use:   "show",
		Short: "Show a cloud integration and its attachments",
		Args:  cobra.NoArgs,
		RunE: a.withClient(func(ctx context.Context, c *client.Client, _ []string) error {
			in, err := c.GetIntegration(ctx, id)
			if err != nil {
				return err
			}
			atts, err := c.IntegrationAttachments(ctx, id)
			if err != nil {
				return err
			}
			return a.printIntegration(in, orEmpty(atts.Items))
		}),
	}
	cmd.Flags().StringVar(&id, "id", "", "integration id")
	required(cmd, "id")
	return cmd
}

func (a *app) integrationList() *cobra.Command {
	var sp string
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List cloud integrations",
		Args:  cobra.NoArgs,
		RunE: a.withClient(func(ctx context.Context, c *client.Client, _ []string) error {
			l, err := c.ListIntegrations(ctx, sp)
			if err != nil {
				return err
			}
			items := orEmpty(l.Items)
			return a.print(items, func(w io.Writer) {
				row(w, "ID", "NAME", "SPACE", "TYPE", "LABELS")
				for _, x := range items {
					row(w, x.ID, x.Name, x.Space, x.Type, joinOrDash(x.Labels))
				}
			})
		}),
	}
	cmd.Flags().StringVar(&sp, "space", "", "only the integrations of this space")
	return cmd
}

func (a *app) integrationDelete() *cobra.Command {
	var id string
	cmd := &cobra.Command{
		Use:   "delete",
		Short: "Delete a cloud integration and its attachments",
		Args:  cobra.NoArgs,
		RunE: a.withClient(func(ctx context.Context, c *client.Client, _ []string) error {
			if err := c.DeleteIntegration(ctx, id); err != nil {
				return err
			}
			if a.output == "json" {
				return a.printJSON(map[string]any{"deleted": id})
			}
			fmt.Fprintf(a.stdout, "Deleted integration %q.\n", id)
			return nil
		}),
	}
	cmd.Flags().StringVar(&id, "id", "", "integration id")
	required(cmd, "id")
	return cmd
}

func (a *app) integrationAttach() *cobra.Command {
	var id string
	var in apiv1.IntegrationAttach
	cmd := &cobra.Command{
		Use:   "attach",
		Short: "Attach a cloud integration to a stack: --read for planning, --write for applying (both by default)",
		Args:  cobra.NoArgs,
	}
	cmd.RunE = a.withClient(func(ctx context.Context, c *client.Client, _ []string) error {
		if !cmd.Flags().Changed("read") && !cmd.Flags().Changed("write") {
			in.Read, in.Write = true, true
		}
		at, err := c.AttachIntegration(ctx, id, in)
		if err != nil {
			return err
		}
		return a.print(at, func(w io.Writer) {
			field(w, "Stack", at.Stack)
			field(w, "Read", at.Read)
			field(w, "Write", at.Write)
		})
	})
	f := cmd.Flags()
	f.StringVar(&id, "id", "", "integration id")
	f.StringVar(&in.Stack, "stack", "", "stack id")
	f.BoolVar(&in.Read, "read", false, "credentials for planning")
	f.BoolVar(&in.Write, "write", false, "credentials for applying and tasks")
	required(cmd, "id", "stack")
	return cmd
}

func (a *app) integrationDetach() *cobra.Command {
	var id, stack string
	cmd := &cobra.Command{
		Use:   "detach",
		Short: "Detach a cloud integration from a stack",
		Args:  cobra.NoArgs,
		RunE: a.withClient(func(ctx context.Context, c *client.Client, _ []string) error {
			if err := c.DetachIntegration(ctx, id, stack); err != nil {
				return err
			}
			if a.output == "json" {
				return a.printJSON(map[string]any{"detached": id, "stack": stack})
			}
			fmt.Fprintf(a.stdout, "Detached integration %q from stack %q.\n", id, stack)
			return nil
		}),
	}
	cmd.Flags().StringVar(&id, "id", "", "integration id")
	cmd.Flags().StringVar(&stack, "stack", "", "stack id")
	required(cmd, "id", "stack")
	return cmd
}

func (a *app) integrationAWSTrust() *cobra.Command {
	var id, stack string
	cmd := &cobra.Command{
		Use:   "trust-policy",
		Short: "Print the IAM trust policy to put on the integration's role for a stack",
		Args:  cobra.NoArgs,
		RunE: a.withClient(func(ctx context.Context, c *client.Client, _ []string) error {
			doc, err := c.AWSTrustPolicy(ctx, id, stack)
			if err != nil {
				return err
			}
			return a.printJSON(doc)
		}),
	}
	cmd.Flags().StringVar(&id, "id", "", "integration id")
	cmd.Flags().StringVar(&stack, "stack", "", "stack id")
	required(cmd, "id", "stack")
	return cmd
}

func (a *app) integrationOIDCSetup() *cobra.Command {
	var provider, stack string
	cmd := &cobra.Command{
		Use:   "setup",
		Short: "Print what to configure on a cloud (aws, gcp, azure, vault) so that it trusts a stack's runs",
		Args:  cobra.NoArgs,
		RunE: a.withClient(func(ctx context.Context, c *client.Client, _ []string) error {
			out, err := c.OIDCSetup(ctx, provider, stack)
			if err != nil {
				return err
			}
			if a.output == "json" {
				return a.printJSON(out)
			}
			fmt.Fprintf(a.stdout, "Issuer:   %s\nAudience: %s\nSubjects: %s (read), %s (write)\n\n%s", out.Issuer, out.Audience, out.SubjectRead, out.SubjectWrite, out.Instructions)
			return nil
		}),
	}
	cmd.Flags().StringVar(&provider, "provider", "", "aws, gcp, azure or vault")
	cmd.Flags().StringVar(&stack, "stack", "", "the stack whose runs the cloud should trust")
	required(cmd, "provider", "stack")
	return cmd
}
