package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"

	"github.com/gantry-iac/gantry/internal/apiv1"
	"github.com/gantry-iac/gantry/internal/client"
	"github.com/gantry-iac/gantry/internal/policy/engine"
)

func (a *app) policySamples() *cobra.Command {
	var (
		id    string
		limit int
	)
	cmd := &cobra.Command{
		Use:   "samples",
		Short: "List the stored evaluations (samples) of a policy, newest first",
		Args:  cobra.NoArgs,
		RunE: a.withClient(func(ctx context.Context, c *client.Client, _ []string) error {
			l, err := c.PolicySamples(ctx, id, limit)
			if err != nil {
				return err
			}
			items := orEmpty(l.Items)
			return a.print(items, func(w io.Writer) {
				row(w, "KEY", "RUN", "TYPE", "VERSION", "OUTCOME", "EXPLICIT", "CREATED")
				for _, s := range items {
					row(w, s.Key, orDash(s.Run), s.Type, s.Version, orDash(s.Outcome), s.Explicit, fmtTime(s.CreatedAt))
				}
			})
		}),
	}
	cmd.Flags().StringVar(&id, "id", "", "policy id")
	cmd.Flags().IntVar(&limit, "limit", 0, "at most this many, 1 to 1000 (default: the server's, 50)")
	required(cmd, "id")
	return cmd
}

func (a *app) policySample() *cobra.Command {
	var id, key string
	cmd := &cobra.Command{
		Use:   "sample",
		Short: "Print a sample: the stored input and result",
		Args:  cobra.NoArgs,
		RunE: a.withClient(func(ctx context.Context, c *client.Client, _ []string) error {
			s, err := c.PolicySample(ctx, id, key)
			if err != nil {
				return err
			}
			return a.print(s, func(w io.Writer) {
				field(w, "Key", s.Key)
				field(w, "Policy", s.Policy)
				field(w, "Version", s.Version)
				field(w, "Type", s.Type)
				field(w, "Run", s.Run)
				field(w, "Outcome", s.Outcome)
				field(w, "Explicit", s.Explicit)
				field(w, "Created", fmtTime(s.CreatedAt))
				fmt.Fprintf(w, "\nInput:\n%s\nResult:\n%s\n", indentJSON(s.Input), indentJSON(s.Result))
			})
		}),
	}
	cmd.Flags().StringVar(&id, "id", "", "policy id")
	cmd.Flags().StringVar(&key, "key", "", "sample key (see policy samples)")
	required(cmd, "id", "key")
	return cmd
}

// indentJSON indents raw JSON for reading; what is not JSON is returned as is.
func indentJSON(raw []byte) string {
	if len(raw) == 0 {
		return "null"
	}
	var b bytes.Buffer
	if err := json.Indent(&b, raw, "", "  "); err != nil {
		return string(raw)
	}
	return b.String()
}

func (a *app) policySimulate() *cobra.Command {
	var id, inputFile, sample, bodyFile string
	cmd := &cobra.Command{
		Use:   "simulate",
		Short: "Evaluate a policy (or an edited body) on an input or a sample, without side effects",
		Args:  cobra.NoArgs,
		RunE: a.withClient(func(ctx context.Context, c *client.Client, _ []string) error {
			in := apiv1.PolicySimulate{Sample: sample}
			if inputFile != "" {
				raw, err := a.readInput("input", inputFile)
				if err != nil {
					return err
				}
				if !json.Valid(raw) {
					return fmt.Errorf("--input %s: not valid JSON", inputFile)
				}
				in.Input = raw
			}
			if bodyFile != "" {
				body, err := a.readInput("body", bodyFile)
				if err != nil {
					return err
				}
				in.Body = string(body)
			}
			sim, err := c.SimulatePolicy(ctx, id, in)
			if err != nil {
				return err
			}
			return a.print(sim, func(w io.Writer) { simulationDetail(w, sim) })
		}),
	}
	f := cmd.Flags()
	f.StringVar(&id, "id", "", "policy id")
	f.StringVar(&inputFile, "input", "", `JSON file of the input to evaluate ("-": standard input)`)
	f.StringVar(&sample, "sample", "", "key of a stored sample to evaluate again (see policy samples)")
	f.StringVar(&bodyFile, "body", "", "file of an edited Rego body to evaluate instead of the stored one")
	exclusive(cmd, "input", "sample")
	cmd.MarkFlagsOneRequired("input", "sample")
	required(cmd, "id")
	return cmd
}

func simulationDetail(w io.Writer, sim apiv1.PolicySimulation) {
	field(w, "Policy", sim.Policy)
	if sim.Edited {
		field(w, "Version", "edited body")
	} else {
		field(w, "Version", sim.Version)
	}
	field(w, "Engine", sim.Engine)
	field(w, "Sample", sim.Sample)
	decisionDetail(w, "", sim.Decision)
	if sim.Recorded == nil {
		return
	}
	decisionDetail(w, "Recorded ", *sim.Recorded)
	if len(sim.Changes) == 0 {
		field(w, "Changes", "no change")
		return
	}
	for _, ch := range sim.Changes {
		field(w, "Change", ch)
	}
}

func decisionDetail(w io.Writer, prefix string, d apiv1.PolicyDecision) {
	field(w, prefix+"Outcome", orDash(d.Outcome))
	for _, m := range d.Messages {
		field(w, prefix+"Message", m)
	}
	if len(d.Values) > 0 {
		b, _ := json.Marshal(d.Values)
		field(w, prefix+"Values", string(b))
	}
	field(w, prefix+"Error", d.Error)
	if prefix == "" {
		field(w, "Duration", fmt.Sprintf("%.3f ms", d.DurationMS))
	}
}

func (a *app) policyReplay() *cobra.Command {
	var id, bodyFile, since string
	cmd := &cobra.Command{
		Use:   "replay",
		Short: "Evaluate an edited body on a policy's recent samples and list the decisions it would change",
		Args:  cobra.NoArgs,
		RunE: a.withClient(func(ctx context.Context, c *client.Client, _ []string) error {
			body, err := a.readInput("body", bodyFile)
			if err != nil {
				return err
			}
			res, err := c.ReplayPolicy(ctx, id, apiv1.PolicyReplay{Body: string(body), Since: since})
			if err != nil {
				return err
			}
			res.Changed = orEmpty(res.Changed)
			err = a.print(res, func(w io.Writer) {
				if len(res.Changed) == 0 {
					return
				}
				row(w, "SAMPLE", "RUN", "BEFORE → AFTER", "CHANGES")
				for _, it := range res.Changed {
					row(w, it.Sample, orDash(it.Run), orDash(it.Before)+" → "+orDash(it.After), strings.Join(it.Changes, "; "))
				}
			})
			if err != nil || a.output == "json" {
				return err
			}
			_, err = fmt.Fprintf(a.stdout, "%d samples evaluated, %d would change\n", res.Evaluated, len(res.Changed))
			return err
		}),
	}
	f := cmd.Flags()
	f.StringVar(&id, "id", "", "policy id")
	f.StringVar(&bodyFile, "body", "", `file of the edited Rego body ("-": standard input)`)
	f.StringVar(&since, "since", "7d", "replay the samples of this period: a duration like 7d, 36h or 90m")
	required(cmd, "id", "body")
	return cmd
}

// policyTest runs Rego unit tests locally: it needs no server and no login.
func (a *app) policyTest() *cobra.Command {
	var verbose bool
	cmd := &cobra.Command{
		Use:   "test DIR",
		Short: "Run the Rego unit tests (rules named test_*) of the .rego files under DIR, locally",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			report := a.stdout
			if a.output == "json" {
				report = a.stderr // stdout holds only the JSON summary
			}
			passed, failed, err := engine.RunTests(cmd.Context(), args[0], report, verbose)
			if err != nil {
				return err
			}
			// The report ends with opa test's own summary (PASS: n/N,
			// FAIL: n/N): the text output adds none of its own.
			if a.output == "json" {
				if err := a.printJSON(map[string]int{"passed": passed, "failed": failed}); err != nil {
					return err
				}
			}
			if failed > 0 {
				return fmt.Errorf("%d of %d policy tests failed", failed, passed+failed)
			}
			return nil
		},
	}
	cmd.Flags().BoolVarP(&verbose, "verbose", "v", false, "report every test, not only the failures")
	return cmd
}

func (a *app) policyLibrary() *cobra.Command {
	return group("library", "Browse and import the policies shipped with the server",
		a.libraryList(), a.libraryShow(), a.libraryImport())
}

func (a *app) libraryList() *cobra.Command {
	return &cobra.Command{
		Use:   "list",
		Short: "List the library's policies",
		Args:  cobra.NoArgs,
		RunE: a.withClient(func(ctx context.Context, c *client.Client, _ []string) error {
			l, err := c.PolicyLibrary(ctx)
			if err != nil {
				return err
			}
			items := orEmpty(l.Items)
			return a.print(items, func(w io.Writer) {
				row(w, "NAME", "TYPE", "LABELS", "DESCRIPTION")
				for _, e := range items {
					row(w, e.Name, e.Type, joinOrDash(e.Labels), oneLine(e.Description, 80))
				}
			})
		}),
	}
}

func (a *app) libraryShow() *cobra.Command {
	var name string
	cmd := &cobra.Command{
		Use:   "show",
		Short: "Show a library policy and its body",
		Args:  cobra.NoArgs,
		RunE: a.withClient(func(ctx context.Context, c *client.Client, _ []string) error {
			l, err := c.PolicyLibrary(ctx)
			if err != nil {
				return err
			}
			for _, e := range l.Items {
				if e.Name != name {
					continue
				}
				err := a.print(e, func(w io.Writer) {
					field(w, "Name", e.Name)
					field(w, "Type", e.Type)
					field(w, "Labels", joinOrDash(e.Labels))
					field(w, "Description", e.Description)
				})
				if err != nil || a.output == "json" {
					return err
				}
				return a.printBody(e.Body)
			}
			return fmt.Errorf("no library policy %q (see gantry policy library list)", name)
		}),
	}
	cmd.Flags().StringVar(&name, "name", "", "library policy name")
	required(cmd, "name")
	return cmd
}

func (a *app) libraryImport() *cobra.Command {
	var (
		name   string
		in     apiv1.LibraryImport
		labels []string
	)
	cmd := &cobra.Command{
		Use:   "import",
		Short: "Create a policy from a library policy",
		Args:  cobra.NoArgs,
	}
	cmd.RunE = a.withClient(func(ctx context.Context, c *client.Client, _ []string) error {
		if cmd.Flags().Changed("label") {
			in.Labels = nonEmpty(labels)
		}
		pol, err := c.ImportLibraryPolicy(ctx, name, in)
		if err != nil {
			return err
		}
		return a.printPolicy(pol, nil, false)
	})
	f := cmd.Flags()
	f.StringVar(&name, "name", "", "library policy name (see policy library list)")
	f.StringVar(&in.Space, "space", "", "space of the new policy (default root)")
	f.StringVar(&in.ID, "id", "", "id of the new policy (default: the library name)")
	f.StringArrayVar(&labels, "label", nil, "label (repeatable; default: the library policy's labels)")
	required(cmd, "name")
	return cmd
}
