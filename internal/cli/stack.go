package cli

import (
	"context"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/gantry-iac/gantry/internal/apiv1"
	"github.com/gantry-iac/gantry/internal/client"
)

func (a *app) stackCommand() *cobra.Command {
	return group("stack", "Manage stacks, their environment, runs and state",
		a.stackCreate(), a.stackList(), a.stackShow(), a.stackUpdate(), a.stackDelete(),
		a.envCommand(),
		a.runCreateCommand("deploy", "Queue a tracked run (plan, then apply once confirmed)", apiv1.RunTracked),
		a.runCreateCommand("preview", "Queue a proposed run (plan only)", apiv1.RunProposed),
		a.runCreateCommand("destroy", "Queue a run that destroys the stack's resources", apiv1.RunDestroy),
		a.taskCommand(),
		a.confirmCommand(), a.discardCommand(), a.logsCommand(),
		a.outputsCommand(), a.stateCommand(),
		a.stackNotifyPush(),
		a.driftDetectionCommand(), a.scheduleCommand(),
	)
}

// hookFlags names the hook flags and the field of apiv1.Hooks each sets.
var hookFlags = []struct {
	name  string
	field func(*apiv1.Hooks) *[]string
}{
	{"before-init", func(h *apiv1.Hooks) *[]string { return &h.BeforeInit }},
	{"after-init", func(h *apiv1.Hooks) *[]string { return &h.AfterInit }},
	{"before-plan", func(h *apiv1.Hooks) *[]string { return &h.BeforePlan }},
	{"after-plan", func(h *apiv1.Hooks) *[]string { return &h.AfterPlan }},
	{"before-apply", func(h *apiv1.Hooks) *[]string { return &h.BeforeApply }},
	{"after-apply", func(h *apiv1.Hooks) *[]string { return &h.AfterApply }},
}

// stackFlags are the flags of stack create and stack update.
type stackFlags struct {
	id, name, space, repository, branch, projectRoot string
	tool, toolVersion, description                   string
	workerPool                                       string
	autodeploy, managedState, rawPolicyInput         bool
	labels                                           []string
	hooks                                            apiv1.Hooks
}

func (s *stackFlags) register(f *pflag.FlagSet) {
	f.StringVar(&s.id, "id", "", "stack id (a slug)")
	f.StringVar(&s.name, "name", "", "display name (default: the id)")
	f.StringVar(&s.space, "space", "", "space of the stack (default root)")
	f.StringVar(&s.repository, "repository", "", "git repository URL")
	f.StringVar(&s.branch, "branch", "", "branch to track (default main)")
	f.StringVar(&s.projectRoot, "project-root", "", "directory of the root module in the repository")
	f.StringVar(&s.tool, "tool", "", "opentofu (default) or terraform")
	f.StringVar(&s.toolVersion, "tool-version", "", "version of the tool (default: the server's choice)")
	f.BoolVar(&s.autodeploy, "autodeploy", false, "apply tracked and destroy runs without confirmation")
	f.StringArrayVar(&s.labels, "label", nil, "label (repeatable)")
	f.StringVar(&s.description, "description", "", "description")
	f.BoolVar(&s.managedState, "managed-state", true, "keep the state in Gantry's state backend")
	f.BoolVar(&s.rawPolicyInput, "raw-policy-input", false, "plan policies see sensitive values unsanitized (default: sanitized)")
	f.StringVar(&s.workerPool, "worker-pool", "", "worker pool whose private workers run the stack (a pool of its space or of an ancestor it inherits from; default: the built-in pool)")
	for _, h := range hookFlags {
		f.StringArrayVar(h.field(&s.hooks), h.name, nil, "shell command run "+strings.ReplaceAll(h.name, "-", " ")+" (repeatable)")
	}
}

func (s *stackFlags) create(f *pflag.FlagSet) apiv1.StackCreate {
	in := apiv1.StackCreate{
		ID: s.id, Name: s.name, Space: s.space, Repository: s.repository, Branch: s.branch,
		ProjectRoot: s.projectRoot, Tool: s.tool, ToolVersion: s.toolVersion,
		Labels: nonEmpty(s.labels), Description: s.description, Autodeploy: s.autodeploy,
		RawPolicyInput: s.rawPolicyInput, WorkerPool: s.workerPool,
	}
	if f.Changed("managed-state") {
		in.ManagedState = &s.managedState
	}
	hooks := apiv1.Hooks{}
	for _, h := range hookFlags {
		*h.field(&hooks) = nonEmpty(*h.field(&s.hooks))
	}
	if s.hooksChanged(f) {
		in.Hooks = &hooks
	}
	return in
}

func (s *stackFlags) hooksChanged(f *pflag.FlagSet) bool {
	for _, h := range hookFlags {
		if f.Changed(h.name) {
			return true
		}
	}
	return false
}

// update builds the body of PATCH /stacks/{id} from the changed flags. Hooks
// travel as one object, so changed hook flags are merged into the stack's
// current hooks and the other phases are sent unchanged.
func (s *stackFlags) update(ctx context.Context, c *client.Client, f *pflag.FlagSet) (apiv1.StackUpdate, error) {
	var in apiv1.StackUpdate
	strs := []struct {
		flag string
		dst  **string
		val  *string
	}{
		{"name", &in.Name, &s.name}, {"space", &in.Space, &s.space},
		{"repository", &in.Repository, &s.repository}, {"branch", &in.Branch, &s.branch},
		{"project-root", &in.ProjectRoot, &s.projectRoot}, {"tool", &in.Tool, &s.tool},
		{"tool-version", &in.ToolVersion, &s.toolVersion}, {"description", &in.Description, &s.description},
		{"worker-pool", &in.WorkerPool, &s.workerPool},
	}
	for _, x := range strs {
		if f.Changed(x.flag) {
			*x.dst = x.val
		}
	}
	if f.Changed("autodeploy") {
		in.Autodeploy = &s.autodeploy
	}
	if f.Changed("managed-state") {
		in.ManagedState = &s.managedState
	}
	if f.Changed("raw-policy-input") {
		in.RawPolicyInput = &s.rawPolicyInput
	}
	if f.Changed("label") {
		l := nonEmpty(s.labels)
		in.Labels = &l
	}
	if s.hooksChanged(f) {
		cur, err := c.GetStack(ctx, s.id)
		if err != nil {
			return in, err
		}
		hooks := cur.Hooks
		for _, h := range hookFlags {
			if f.Changed(h.name) {
				*h.field(&hooks) = nonEmpty(*h.field(&s.hooks))
			}
		}
		in.Hooks = &hooks
	}
	return in, nil
}

func (a *app) stackCreate() *cobra.Command {
	var s stackFlags
	cmd := &cobra.Command{
		Use:   "create",
		Short: "Create a stack",
		Args:  cobra.NoArgs,
	}
	cmd.RunE = a.withClient(func(ctx context.Context, c *client.Client, _ []string) error {
		st, err := c.CreateStack(ctx, s.create(cmd.Flags()))
		if err != nil {
			return err
		}
		return a.printStack(st)
	})
	s.register(cmd.Flags())
	required(cmd, "id", "repository")
	return cmd
}

func (a *app) stackUpdate() *cobra.Command {
	var (
		s     stackFlags
		force bool
	)
	cmd := &cobra.Command{
		Use:   "update",
		Short: "Change a stack (only the flags given)",
		Args:  cobra.NoArgs,
	}
	cmd.RunE = a.withClient(func(ctx context.Context, c *client.Client, _ []string) error {
		in, err := s.update(ctx, c, cmd.Flags())
		if err != nil {
			return err
		}
		if in == (apiv1.StackUpdate{}) {
			return usageErrorf("nothing to update: give at least one flag besides --id")
		}
		var before apiv1.Stack
		if in.Tool != nil {
			if before, err = c.GetStack(ctx, s.id); err != nil {
				return err
			}
		}
		st, err := c.UpdateStack(ctx, s.id, in, force)
		if err != nil {
			return err
		}
		if in.Tool != nil && before.Tool != "" && before.Tool != st.Tool {
			a.warnToolSwitch(before, st)
		}
		return a.printStack(st)
	})
	s.register(cmd.Flags())
	updateFlags(cmd, map[string]string{
		"name":             "display name",
		"space":            "move the stack to this space",
		"branch":           "branch to track",
		"tool":             "opentofu or terraform",
		"tool-version":     `version of the tool ("": the server's choice)`,
		"label":            `label (repeatable; replaces all labels, --label "" removes them)`,
		"raw-policy-input": "plan policies see sensitive values unsanitized (--raw-policy-input=false: sanitized)",
		"worker-pool":      `worker pool whose private workers run the stack (a pool of its space or of an ancestor it inherits from; "": the built-in pool)`,
	})
	cmd.Flags().BoolVar(&force, "force", false, "turn managed state off even though the stack has state in Gantry (its runs then start from the state its own backend holds)")
	required(cmd, "id")
	return cmd
}

// warnToolSwitch tells what switching a stack between OpenTofu and
// Terraform means (docs/runs.md#switching-between-opentofu-and-terraform).
func (a *app) warnToolSwitch(before, after apiv1.Stack) {
	version := after.ToolVersion
	if version == "" {
		version = "none: the server's choice"
		if before.ToolVersion != "" {
			version = "cleared (" + before.ToolVersion + " was " + before.Tool + "'s): the server's choice; set one with --tool-version"
		}
	}
	fmt.Fprintf(a.stderr, `Warning: stack %s switched from %s to %s (version: %s).
  Runs already waiting for confirmation still apply with %s. Terraform ignores .tofu files
  (what only they declare would be destroyed), provider addresses differ (registry.opentofu.org
  and registry.terraform.io), and a state written by a newer version may not be read by an older
  one. Run a proposed run first: see docs/runs.md, "Switching between OpenTofu and Terraform".
`, after.ID, before.Tool, after.Tool, version, before.Tool)
}

func (a *app) stackList() *cobra.Command {
	var (
		opts  client.StackListOptions
		limit int
	)
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List stacks",
		Args:  cobra.NoArgs,
		RunE: a.withClient(func(ctx context.Context, c *client.Client, _ []string) error {
			opts.Labels = nonEmpty(opts.Labels)
			stacks, err := collect(limit, func(o client.ListOptions) (apiv1.List[apiv1.Stack], error) {
				opts.ListOptions = o
				return c.ListStacks(ctx, opts)
			})
			if err != nil {
				return err
			}
			return a.print(stacks, func(w io.Writer) {
				row(w, "ID", "NAME", "SPACE", "STATE", "BRANCH", "LABELS")
				for _, s := range stacks {
					row(w, s.ID, s.Name, s.Space, orDash(s.State), s.Branch, joinOrDash(s.Labels))
				}
			})
		}),
	}
	f := cmd.Flags()
	f.StringVar(&opts.Space, "space", "", "only stacks of this space")
	f.StringArrayVar(&opts.Labels, "label", nil, "only stacks with this label (repeatable: all must match)")
	f.IntVar(&limit, "limit", 0, "list at most this many (default: all)")
	return cmd
}

func (a *app) stackShow() *cobra.Command {
	var id string
	cmd := &cobra.Command{
		Use:   "show",
		Short: "Show a stack",
		Args:  cobra.NoArgs,
		RunE: a.withClient(func(ctx context.Context, c *client.Client, _ []string) error {
			st, err := c.GetStack(ctx, id)
			if err != nil {
				return err
			}
			return a.printStack(st)
		}),
	}
	cmd.Flags().StringVar(&id, "id", "", "stack id")
	required(cmd, "id")
	return cmd
}

func (a *app) stackDelete() *cobra.Command {
	var (
		id    string
		force bool
	)
	cmd := &cobra.Command{
		Use:   "delete",
		Short: "Delete a stack",
		Args:  cobra.NoArgs,
		RunE: a.withClient(func(ctx context.Context, c *client.Client, _ []string) error {
			if err := c.DeleteStack(ctx, id, force); err != nil {
				return err
			}
			return a.deleted("stack", id)
		}),
	}
	cmd.Flags().StringVar(&id, "id", "", "stack id")
	cmd.Flags().BoolVar(&force, "force", false, "delete even if the stack has resources or runs in progress")
	required(cmd, "id")
	return cmd
}

func (a *app) printStack(s apiv1.Stack) error {
	return a.print(s, func(w io.Writer) {
		field(w, "ID", s.ID)
		field(w, "Name", s.Name)
		field(w, "Space", s.Space)
		field(w, "Repository", s.Repository)
		field(w, "Branch", s.Branch)
		field(w, "Project root", s.ProjectRoot)
		tool := s.Tool
		if s.ToolVersion != "" {
			tool += " " + s.ToolVersion
		}
		field(w, "Tool", tool)
		field(w, "Autodeploy", s.Autodeploy)
		field(w, "Managed state", s.ManagedState)
		field(w, "Raw policy input", s.RawPolicyInput)
		field(w, "Worker pool", orBuiltin(s.WorkerPool))
		field(w, "Labels", joinOrDash(s.Labels))
		field(w, "Description", s.Description)
		field(w, "State", orDash(s.State))
		for _, h := range hookFlags {
			for _, cmd := range *h.field(&s.Hooks) {
				field(w, "Hook "+h.name, cmd)
			}
		}
		field(w, "Created", fmtTime(s.CreatedAt))
		field(w, "Updated", fmtTime(s.UpdatedAt))
	})
}

// stackOf fetches a run and checks it belongs to stack.
func stackOf(ctx context.Context, c *client.Client, stack, run string) (apiv1.Run, error) {
	r, err := c.GetRun(ctx, run)
	if err != nil {
		return r, err
	}
	if r.Stack != stack {
		return r, fmt.Errorf("run %s belongs to stack %q, not %q", run, r.Stack, stack)
	}
	return r, nil
}
