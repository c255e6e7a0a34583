package cli

import (
	"context"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/gantry-iac/gantry/internal/apiv1"
	"github.com/gantry-iac/gantry/internal/client"
)

func (a *app) policyCommand() *cobra.Command {
	return group("policy", "Manage Rego policies: create, attach, simulate, replay, test, and the library",
		a.policyCreate(), a.policyUpdate(), a.policyShow(), a.policyList(), a.policyDelete(),
		a.policyAttachment(false), a.policyAttachment(true),
		a.policySamples(), a.policySample(), a.policySimulate(), a.policyReplay(),
		a.policyTest(), a.policyLibrary(),
	)
}

// readInput reads the file name, or the command's standard input for "-".
func (a *app) readInput(flag, name string) ([]byte, error) {
	if name == "-" {
		b, err := io.ReadAll(a.stdin)
		if err != nil {
			return nil, fmt.Errorf("--%s -: read standard input: %w", flag, err)
		}
		return b, nil
	}
	b, err := os.ReadFile(name)
	if err != nil {
		return nil, fmt.Errorf("--%s: %w", flag, err)
	}
	return b, nil
}

// policyFlags are the flags of policy create and policy update.
type policyFlags struct {
	id, name, typ, space, bodyFile, engine, description string
	labels                                              []string
}

func (p *policyFlags) register(f *pflag.FlagSet) {
	f.StringVar(&p.id, "id", "", "policy id (a slug)")
	f.StringVar(&p.name, "name", "", "display name (default: the id)")
	f.StringVar(&p.bodyFile, "body-file", "", `file holding the Rego body ("-": standard input)`)
	f.StringArrayVar(&p.labels, "label", nil, `label (repeatable; "autoattach:<stack label>" attaches it to matching stacks)`)
	f.StringVar(&p.engine, "engine", "", "Rego syntax: rego_v0 or rego_v1 (default: detected from the body)")
	f.StringVar(&p.description, "description", "", "description")
}

func (a *app) policyCreate() *cobra.Command {
	var p policyFlags
	cmd := &cobra.Command{
		Use:   "create",
		Short: "Create a policy from a Rego file (it must compile)",
		Args:  cobra.NoArgs,
		RunE: a.withClient(func(ctx context.Context, c *client.Client, _ []string) error {
			body, err := a.readInput("body-file", p.bodyFile)
			if err != nil {
				return err
			}
			pol, err := c.CreatePolicy(ctx, apiv1.PolicyCreate{ID: p.id, Name: p.name, Space: p.space, Type: strings.ToUpper(p.typ),
				Body: string(body), Engine: p.engine, Labels: nonEmpty(p.labels), Description: p.description})
			if err != nil {
				return err
			}
			return a.printPolicy(pol, nil, false)
		}),
	}
	f := cmd.Flags()
	p.register(f)
	f.StringVar(&p.typ, "type", "", "PLAN, APPROVAL, TRIGGER, GIT_PUSH, NOTIFICATION or LOGIN")
	f.StringVar(&p.space, "space", "", "space of the policy (default root)")
	required(cmd, "id", "type", "body-file")
	return cmd
}

func (a *app) policyUpdate() *cobra.Command {
	var p policyFlags
	cmd := &cobra.Command{
		Use:   "update",
		Short: "Change a policy (only the flags given); a new body or engine makes a new version",
		Args:  cobra.NoArgs,
	}
	cmd.RunE = a.withClient(func(ctx context.Context, c *client.Client, _ []string) error {
		f := cmd.Flags()
		var in apiv1.PolicyUpdate
		if f.Changed("body-file") {
			body, err := a.readInput("body-file", p.bodyFile)
			if err != nil {
				return err
			}
			s := string(body)
			in.Body = &s
		}
		for _, x := range []struct {
			flag string
			dst  **string
			val  *string
		}{{"name", &in.Name, &p.name}, {"engine", &in.Engine, &p.engine}, {"description", &in.Description, &p.description}} {
			if f.Changed(x.flag) {
				*x.dst = x.val
			}
		}
		if f.Changed("label") {
			l := nonEmpty(p.labels)
			in.Labels = &l
		}
		if in == (apiv1.PolicyUpdate{}) {
			return usageErrorf("nothing to update: give at least one of --name, --body-file, --label, --engine, --description")
		}
		pol, err := c.UpdatePolicy(ctx, p.id, in)
		if err != nil {
			return err
		}
		return a.printPolicy(pol, nil, false)
	})
	p.register(cmd.Flags())
	updateFlags(cmd, map[string]string{
		"name":   "display name",
		"label":  `label (repeatable; replaces all labels; --label "" removes them)`,
		"engine": `Rego syntax: rego_v0 or rego_v1 ("" : detect from the body)`,
	})
	required(cmd, "id")
	return cmd
}

// policyWithAttachments is what `policy show -o json` prints.
type policyWithAttachments struct {
	apiv1.Policy
	Attachments []apiv1.PolicyAttachment `json:"attachments"`
}

func (a *app) policyShow() *cobra.Command {
	var id string
	cmd := &cobra.Command{
		Use:   "show",
		Short: "Show a policy, the stacks it applies to, and its body",
		Args:  cobra.NoArgs,
		RunE: a.withClient(func(ctx context.Context, c *client.Client, _ []string) error {
			pol, err := c.GetPolicy(ctx, id)
			if err != nil {
				return err
			}
			at, err := c.PolicyAttachments(ctx, id)
			if err != nil {
				return err
			}
			return a.printPolicy(pol, orEmpty(at.Items), true)
		}),
	}
	cmd.Flags().StringVar(&id, "id", "", "policy id")
	required(cmd, "id")
	return cmd
}

// printPolicy prints a policy's metadata, with show also its attachments
// and body.
func (a *app) printPolicy(p apiv1.Policy, attachments []apiv1.PolicyAttachment, show bool) error {
	var v any = p
	if show {
		v = policyWithAttachments{p, attachments}
	}
	err := a.print(v, func(w io.Writer) {
		field(w, "ID", p.ID)
		field(w, "Name", p.Name)
		field(w, "Space", p.Space)
		field(w, "Type", p.Type)
		engineText := p.Engine
		if p.EngineSet == "" {
			engineText += " (detected)"
		}
		field(w, "Engine", engineText)
		field(w, "Version", p.Version)
		field(w, "Labels", joinOrDash(p.Labels))
		field(w, "Description", p.Description)
		field(w, "Created", fmtTime(p.CreatedAt))
		field(w, "Updated", fmtTime(p.UpdatedAt))
		if !show {
			return
		}
		names := make([]string, 0, len(attachments))
		for _, at := range attachments {
			if at.NotApplied != "" {
				names = append(names, at.Stack+" ("+at.Via+"; "+at.NotApplied+")")
				continue
			}
			names = append(names, at.Stack+" ("+at.Via+")")
		}
		field(w, "Attached to", joinOrDash(names))
	})
	if err != nil || !show || a.output == "json" {
		return err
	}
	return a.printBody(p.Body)
}

// printBody writes a Rego body after a detail view, past the tabwriter so
// that its tabs stay tabs.
func (a *app) printBody(body string) error {
	if !strings.HasSuffix(body, "\n") {
		body += "\n"
	}
	_, err := io.WriteString(a.stdout, "\n"+body)
	return err
}

func (a *app) policyList() *cobra.Command {
	var (
		sp, typ string
		limit   int
	)
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List policies",
		Args:  cobra.NoArgs,
		RunE: a.withClient(func(ctx context.Context, c *client.Client, _ []string) error {
			items, err := collect(limit, func(o client.ListOptions) (apiv1.List[apiv1.Policy], error) {
				return c.ListPolicies(ctx, o, sp, strings.ToUpper(typ))
			})
			if err != nil {
				return err
			}
			return a.print(items, func(w io.Writer) {
				row(w, "ID", "NAME", "TYPE", "SPACE", "ENGINE", "VERSION", "LABELS")
				for _, p := range items {
					row(w, p.ID, p.Name, p.Type, p.Space, p.Engine, p.Version, joinOrDash(p.Labels))
				}
			})
		}),
	}
	f := cmd.Flags()
	f.StringVar(&sp, "space", "", "only policies of this space")
	f.StringVar(&typ, "type", "", "only policies of this type (PLAN, APPROVAL, TRIGGER, GIT_PUSH, NOTIFICATION, LOGIN)")
	f.IntVar(&limit, "limit", 0, "list at most this many (default: all)")
	return cmd
}

func (a *app) policyDelete() *cobra.Command {
	var id string
	cmd := &cobra.Command{
		Use:   "delete",
		Short: "Delete a policy and its attachments",
		Args:  cobra.NoArgs,
		RunE: a.withClient(func(ctx context.Context, c *client.Client, _ []string) error {
			if err := c.DeletePolicy(ctx, id); err != nil {
				return err
			}
			return a.deleted("policy", id)
		}),
	}
	cmd.Flags().StringVar(&id, "id", "", "policy id")
	required(cmd, "id")
	return cmd
}

// policyAttachment is `policy attach`, or with detach `policy detach`.
func (a *app) policyAttachment(detach bool) *cobra.Command {
	var id, st string
	cmd := &cobra.Command{
		Use:   "attach",
		Short: "Attach a policy to a stack",
		Args:  cobra.NoArgs,
		RunE: a.withClient(func(ctx context.Context, c *client.Client, _ []string) error {
			var out any = map[string]string{"detached": id, "stack": st}
			msg := fmt.Sprintf("Detached policy %q from stack %q.\n", id, st)
			if detach {
				if err := c.DetachPolicy(ctx, id, st); err != nil {
					return err
				}
			} else {
				at, err := c.AttachPolicy(ctx, id, st)
				if err != nil {
					return err
				}
				out, msg = at, fmt.Sprintf("Attached policy %q to stack %q.\n", id, at.Stack)
			}
			if a.output == "json" {
				return a.printJSON(out)
			}
			_, err := io.WriteString(a.stdout, msg)
			return err
		}),
	}
	if detach {
		cmd.Use, cmd.Short = "detach", "Detach a policy from a stack"
	}
	cmd.Flags().StringVar(&id, "id", "", "policy id")
	cmd.Flags().StringVar(&st, "stack", "", "stack id")
	required(cmd, "id", "stack")
	return cmd
}
