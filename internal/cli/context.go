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

func (a *app) contextCommand() *cobra.Command {
	return group("context", "Manage contexts: environment variables, mounted files and hooks shared by stacks",
		a.contextCreate(), a.contextList(), a.contextShow(), a.contextDelete(),
		group("env", "Manage a context's environment variables", a.contextEnvSet(), a.contextEnvList(), a.contextEnvDelete()),
		group("file", "Manage a context's mounted files", a.contextFileSet(), a.contextFileDelete()),
		group("hook", "Manage a context's hooks", a.contextHookAdd(), a.contextHookDelete()),
		a.contextAttachment(false), a.contextAttachment(true),
	)
}

func (a *app) contextCreate() *cobra.Command {
	var in apiv1.ContextCreate
	cmd := &cobra.Command{
		Use:   "create",
		Short: "Create a context",
		Args:  cobra.NoArgs,
		RunE: a.withClient(func(ctx context.Context, c *client.Client, _ []string) error {
			in.Labels = nonEmpty(in.Labels)
			out, err := c.CreateContext(ctx, in)
			if err != nil {
				return err
			}
			return a.printContext(out, nil, nil, nil, false)
		}),
	}
	f := cmd.Flags()
	f.StringVar(&in.ID, "id", "", "context id (a slug)")
	f.StringVar(&in.Name, "name", "", "display name (default: the id)")
	f.StringVar(&in.Space, "space", "", "space of the context (default root)")
	f.StringArrayVar(&in.Labels, "label", nil, `label (repeatable; "autoattach:<stack label>" or "autoattach:*" attaches it to matching stacks)`)
	f.StringVar(&in.Description, "description", "", "description")
	required(cmd, "id")
	return cmd
}

func (a *app) contextList() *cobra.Command {
	var sp string
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List contexts",
		Args:  cobra.NoArgs,
		RunE: a.withClient(func(ctx context.Context, c *client.Client, _ []string) error {
			var items []apiv1.Context
			for cursor := ""; ; {
				l, err := c.ListContexts(ctx, client.ListOptions{Cursor: cursor, Limit: 1000}, sp)
				if err != nil {
					return err
				}
				items = append(items, l.Items...)
				if cursor = l.NextCursor; cursor == "" {
					break
				}
			}
			items = orEmpty(items)
			return a.print(items, func(w io.Writer) {
				row(w, "ID", "NAME", "SPACE", "LABELS", "DESCRIPTION")
				for _, x := range items {
					row(w, x.ID, x.Name, x.Space, joinOrDash(x.Labels), orDash(firstLine(x.Description)))
				}
			})
		}),
	}
	cmd.Flags().StringVar(&sp, "space", "", "only the contexts of this space")
	return cmd
}

// contextDetails is what `context show -o json` prints.
type contextDetails struct {
	apiv1.Context
	Env         []apiv1.ContextEnvVar     `json:"env"`
	Files       []apiv1.ContextFile       `json:"files"`
	Attachments []apiv1.ContextAttachment `json:"attachments"`
}

func (a *app) contextShow() *cobra.Command {
	var id string
	cmd := &cobra.Command{
		Use:   "show",
		Short: "Show a context: variables (secrets masked), files, hooks and the stacks it applies to",
		Args:  cobra.NoArgs,
		RunE: a.withClient(func(ctx context.Context, c *client.Client, _ []string) error {
			x, err := c.GetContext(ctx, id)
			if err != nil {
				return err
			}
			env, err := c.ContextEnv(ctx, id)
			if err != nil {
				return err
			}
			files, err := c.ContextFiles(ctx, id)
			if err != nil {
				return err
			}
			at, err := c.ContextAttachments(ctx, id)
			if err != nil {
				return err
			}
			return a.printContext(x, orEmpty(env.Items), orEmpty(files.Items), orEmpty(at.Items), true)
		}),
	}
	cmd.Flags().StringVar(&id, "id", "", "context id")
	required(cmd, "id")
	return cmd
}

// hookList lists the hook phases of h with their commands.
func hookList(h apiv1.ContextHooks) [][2]string {
	var out [][2]string
	for _, p := range []struct {
		name string
		cmds []string
	}{{"before_init", h.BeforeInit}, {"after_init", h.AfterInit}, {"before_plan", h.BeforePlan}, {"after_plan", h.AfterPlan},
		{"before_apply", h.BeforeApply}, {"after_apply", h.AfterApply}, {"before_destroy", h.BeforeDestroy}, {"after_destroy", h.AfterDestroy},
		{"before_perform", h.BeforePerform}, {"after_perform", h.AfterPerform}, {"after_run", h.AfterRun}} {
		for _, c := range p.cmds {
			out = append(out, [2]string{p.name, c})
		}
	}
	return out
}

func (a *app) printContext(x apiv1.Context, env []apiv1.ContextEnvVar, files []apiv1.ContextFile, at []apiv1.ContextAttachment, show bool) error {
	var v any = x
	if show {
		v = contextDetails{x, env, files, at}
	}
	return a.print(v, func(w io.Writer) {
		field(w, "ID", x.ID)
		field(w, "Name", x.Name)
		field(w, "Space", x.Space)
		field(w, "Labels", joinOrDash(x.Labels))
		field(w, "Description", x.Description)
		field(w, "Created", fmtTime(x.CreatedAt))
		field(w, "Updated", fmtTime(x.UpdatedAt))
		for _, h := range hookList(x.Hooks) {
			field(w, "Hook "+h[0], h[1])
		}
		if !show {
			return
		}
		names := make([]string, 0, len(at))
		for _, t := range at {
			if t.Via == "explicit" && t.NotApplied != "" {
				names = append(names, fmt.Sprintf("%s (explicit, priority %d; %s)", t.Stack, t.Priority, t.NotApplied))
			} else if t.Via == "explicit" {
				names = append(names, fmt.Sprintf("%s (priority %d)", t.Stack, t.Priority))
			} else {
				names = append(names, t.Stack+" ("+t.Via+")")
			}
		}
		field(w, "Attached to", joinOrDash(names))
		for _, e := range env {
			value := e.Value
			if e.Secret {
				value = "***** (secret, sha256 " + e.Checksum + ")"
			}
			field(w, "Env "+e.Name, orDash(value))
		}
		for _, f := range files {
			kind := "plain"
			if f.Secret {
				kind = "secret"
			}
			field(w, "File "+f.Path, fmt.Sprintf("%d bytes, %s, sha256 %s", f.Size, kind, f.Checksum))
		}
	})
}

func (a *app) contextDelete() *cobra.Command {
	var id string
	cmd := &cobra.Command{
		Use:   "delete",
		Short: "Delete a context (its variables, files and attachments go with it)",
		Args:  cobra.NoArgs,
		RunE: a.withClient(func(ctx context.Context, c *client.Client, _ []string) error {
			if err := c.DeleteContext(ctx, id); err != nil {
				return err
			}
			return a.deleted("context", id)
		}),
	}
	cmd.Flags().StringVar(&id, "id", "", "context id")
	required(cmd, "id")
	return cmd
}

func (a *app) contextEnvSet() *cobra.Command {
	var (
		id, description string
		secret          bool
	)
	cmd := &cobra.Command{
		Use:   "set --id ID NAME VALUE",
		Short: "Set a context variable (VALUE - reads it from standard input; ro_/wo_ prefixes limit it to the read or write stage)",
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
			v, err := c.SetContextEnv(ctx, id, args[0], apiv1.ContextEnvVarSet{Value: value, Secret: secret, Description: description})
			if err != nil {
				return err
			}
			return a.printContextEnv([]apiv1.ContextEnvVar{v}, v)
		}),
	}
	cmd.Flags().StringVar(&id, "id", "", "context id")
	cmd.Flags().BoolVar(&secret, "secret", false, "write-only value, masked in logs")
	cmd.Flags().StringVar(&description, "description", "", "description")
	required(cmd, "id")
	return cmd
}

func (a *app) contextEnvList() *cobra.Command {
	var id string
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List a context's variables (secret values are not shown)",
		Args:  cobra.NoArgs,
		RunE: a.withClient(func(ctx context.Context, c *client.Client, _ []string) error {
			l, err := c.ContextEnv(ctx, id)
			if err != nil {
				return err
			}
			vars := orEmpty(l.Items)
			return a.printContextEnv(vars, vars)
		}),
	}
	cmd.Flags().StringVar(&id, "id", "", "context id")
	required(cmd, "id")
	return cmd
}

// printContextEnv prints vars as a table, or jsonValue as JSON; secret
// values never show in the table, whatever the server sent.
func (a *app) printContextEnv(vars []apiv1.ContextEnvVar, jsonValue any) error {
	return a.print(jsonValue, func(w io.Writer) {
		row(w, "NAME", "VALUE", "SECRET", "SHA256")
		for _, v := range vars {
			value := v.Value
			if v.Secret {
				value = "*****"
			}
			row(w, v.Name, value, v.Secret, v.Checksum)
		}
	})
}

func (a *app) contextEnvDelete() *cobra.Command {
	var id string
	cmd := &cobra.Command{
		Use:   "delete --id ID NAME",
		Short: "Delete a context variable",
		Args:  namedArgs(1, "variable name"),
		RunE: a.withClient(func(ctx context.Context, c *client.Client, args []string) error {
			if err := c.DeleteContextEnv(ctx, id, args[0]); err != nil {
				return err
			}
			return a.deleted("environment variable", args[0])
		}),
	}
	cmd.Flags().StringVar(&id, "id", "", "context id")
	required(cmd, "id")
	return cmd
}

func (a *app) contextFileSet() *cobra.Command {
	var (
		id, from string
		secret   bool
	)
	cmd := &cobra.Command{
		Use:   "set --id ID PATH --from-file FILE",
		Short: "Mount a file at PATH, relative to the workspace root of runs (the repository is in src/); at most 2 MiB",
		Args:  namedArgs(1, "file path"),
		RunE: a.withClient(func(ctx context.Context, c *client.Client, args []string) error {
			content, err := a.readInput("from-file", from)
			if err != nil {
				return err
			}
			f, err := c.SetContextFile(ctx, id, args[0], content, secret)
			if err != nil {
				return err
			}
			return a.print(f, func(w io.Writer) {
				row(w, "PATH", "SIZE", "SECRET", "SHA256")
				row(w, f.Path, f.Size, f.Secret, f.Checksum)
			})
		}),
	}
	cmd.Flags().StringVar(&id, "id", "", "context id")
	cmd.Flags().StringVar(&from, "from-file", "", `file to read the content from ("-": standard input)`)
	cmd.Flags().BoolVar(&secret, "secret", false, "write-only content, masked in logs")
	required(cmd, "id", "from-file")
	return cmd
}

func (a *app) contextFileDelete() *cobra.Command {
	var id string
	cmd := &cobra.Command{
		Use:   "delete --id ID PATH",
		Short: "Remove a mounted file",
		Args:  namedArgs(1, "file path"),
		RunE: a.withClient(func(ctx context.Context, c *client.Client, args []string) error {
			if err := c.DeleteContextFile(ctx, id, args[0]); err != nil {
				return err
			}
			return a.deleted("file", args[0])
		}),
	}
	cmd.Flags().StringVar(&id, "id", "", "context id")
	required(cmd, "id")
	return cmd
}

func (a *app) contextHookAdd() *cobra.Command {
	var id, phase, command string
	cmd := &cobra.Command{
		Use:   "add",
		Short: "Append a command to a hook phase (before_/after_ init, plan, apply, destroy, perform; after_run)",
		Args:  cobra.NoArgs,
		RunE: a.withClient(func(ctx context.Context, c *client.Client, _ []string) error {
			x, err := c.AddContextHook(ctx, id, phase, command)
			if err != nil {
				return err
			}
			return a.printContext(x, nil, nil, nil, false)
		}),
	}
	cmd.Flags().StringVar(&id, "id", "", "context id")
	cmd.Flags().StringVar(&phase, "phase", "", "hook phase, e.g. before_plan")
	cmd.Flags().StringVar(&command, "command", "", "shell command")
	required(cmd, "id", "phase", "command")
	return cmd
}

func (a *app) contextAttachment(detach bool) *cobra.Command {
	var (
		id, st   string
		priority int
	)
	cmd := &cobra.Command{
		Use:   "attach",
		Short: "Attach a context to a stack with a priority (lower wins), or change its priority",
		Args:  cobra.NoArgs,
		RunE: a.withClient(func(ctx context.Context, c *client.Client, _ []string) error {
			var out any = map[string]string{"detached": id, "stack": st}
			msg := fmt.Sprintf("Detached context %q from stack %q.\n", id, st)
			if detach {
				if err := c.DetachContext(ctx, id, st); err != nil {
					return err
				}
			} else {
				at, err := c.AttachContext(ctx, id, st, priority)
				if err != nil {
					return err
				}
				out, msg = at, fmt.Sprintf("Attached context %q to stack %q with priority %d.\n", id, at.Stack, at.Priority)
			}
			if a.output == "json" {
				return a.printJSON(out)
			}
			_, err := io.WriteString(a.stdout, msg)
			return err
		}),
	}
	cmd.Flags().StringVar(&id, "id", "", "context id")
	cmd.Flags().StringVar(&st, "stack", "", "stack id")
	if detach {
		cmd.Use, cmd.Short = "detach", "Detach a context from a stack"
	} else {
		cmd.Flags().IntVar(&priority, "priority", 0, "priority: lower wins over higher, and over auto-attached contexts")
	}
	required(cmd, "id", "stack")
	return cmd
}

// printEffectiveEnv prints a stack's effective variables, then its mounted
// files and the contexts they come from; -o json prints the variables.
func (a *app) printEffectiveEnv(eff apiv1.EffectiveEnv) error {
	vars := orEmpty(eff.Variables)
	return a.print(vars, func(w io.Writer) {
		row(w, "NAME", "VALUE", "SECRET", "SOURCE", "SHA256")
		for _, v := range vars {
			value := v.Value
			if v.Secret {
				value = "*****"
			}
			row(w, v.Name, value, v.Secret, source(v.Source, v.Context), v.Checksum)
		}
		if len(eff.Files) > 0 {
			row(w)
			row(w, "FILE", "SIZE", "SECRET", "SOURCE", "SHA256")
			for _, f := range eff.Files {
				row(w, f.Path, f.Size, f.Secret, source(f.Source, f.Context), f.Checksum)
			}
		}
		if len(eff.Contexts) > 0 {
			row(w)
			row(w, "CONTEXT", "PRIORITY", "VIA", "SPACE")
			for _, x := range eff.Contexts {
				prio := "-"
				if x.Via == "explicit" {
					prio = fmt.Sprint(x.Priority)
				}
				row(w, x.Context, prio, x.Via, x.Space)
			}
		}
	})
}

func source(kind, ctx string) string {
	if kind == "context" {
		return "context:" + ctx
	}
	return kind
}

// hookPhase returns the list of a context's hooks for a phase name.
func hookPhase(h *apiv1.ContextHooks, phase string) *[]string {
	return map[string]*[]string{
		"before_init": &h.BeforeInit, "after_init": &h.AfterInit, "before_plan": &h.BeforePlan, "after_plan": &h.AfterPlan,
		"before_apply": &h.BeforeApply, "after_apply": &h.AfterApply, "before_destroy": &h.BeforeDestroy,
		"after_destroy": &h.AfterDestroy, "before_perform": &h.BeforePerform, "after_perform": &h.AfterPerform,
		"after_run": &h.AfterRun,
	}[phase]
}

// contextHookDelete is `gantry context hook delete --id C --phase P [--command CMD]`.
func (a *app) contextHookDelete() *cobra.Command {
	var id, phase, command string
	cmd := &cobra.Command{
		Use:   "delete",
		Short: "Remove a command from a hook phase (without --command: every command of the phase)",
		Args:  cobra.NoArgs,
		RunE: a.withClient(func(ctx context.Context, c *client.Client, _ []string) error {
			cur, err := c.GetContext(ctx, id)
			if err != nil {
				return err
			}
			hooks := cur.Hooks
			list := hookPhase(&hooks, phase)
			if list == nil {
				return usageErrorf("--phase %q: want before_/after_ init, plan, apply, destroy, perform, or after_run", phase)
			}
			kept := []string{}
			for _, h := range *list {
				if command != "" && h != command {
					kept = append(kept, h)
				}
			}
			if len(kept) == len(*list) {
				return fmt.Errorf("context %s has no %s hook %q", id, phase, command)
			}
			*list = kept
			x, err := c.UpdateContext(ctx, id, apiv1.ContextUpdate{Hooks: &hooks})
			if err != nil {
				return err
			}
			return a.printContext(x, nil, nil, nil, false)
		}),
	}
	cmd.Flags().StringVar(&id, "id", "", "context id")
	cmd.Flags().StringVar(&phase, "phase", "", "hook phase, e.g. before_plan")
	cmd.Flags().StringVar(&command, "command", "", "the command to remove (default: all of the phase)")
	required(cmd, "id", "phase")
	return cmd
}
