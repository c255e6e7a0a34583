package cli

import (
	"strings"
	"testing"
)

// spacectl's commands and flags get a usage error (exit 2) that names the
// Gantry equivalent, flags after an unknown subcommand included, and
// without the usage, which would bury it.
func TestSpacectlHints(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want []string // substrings of stderr
	}{
		{"approve with flags", []string{"stack", "approve", "--id", "net", "--run", "run-1"},
			[]string{`Error: unknown command "approve" for "gantry stack"`, `spacectl's "stack approve" in Gantry: gantry run review --id RUN --approve`}},
		{"approve, flags first", []string{"stack", "--id", "net", "approve", "--run", "run-1"},
			[]string{`unknown command "approve" for "gantry stack"`, "gantry run review --id RUN --approve"}},
		{"reject", []string{"stack", "reject", "--id", "net", "--run", "run-1", "--note", "no"},
			[]string{`unknown command "reject"`, "gantry run review --id RUN --reject"}},
		{"retry", []string{"stack", "retry", "--id", "net", "--run", "run-1", "--tail"},
			[]string{`unknown command "retry"`, "gantry run retry --id RUN"}},
		{"cancel", []string{"stack", "cancel", "--id", "net", "--run", "run-1"},
			[]string{`unknown command "cancel"`, "gantry run cancel --id RUN"}},
		{"stop", []string{"stack", "stop", "--id", "net", "--run", "run-1"},
			[]string{`unknown command "stop"`, "gantry run stop --id RUN"}},
		{"environment setvar", []string{"stack", "environment", "setvar", "--id", "net", "FOO", "bar", "--write-only"},
			[]string{`unknown command "environment" for "gantry stack"`, `spacectl's "stack environment setvar" in Gantry: gantry stack env set --id ID NAME VALUE [--secret]`}},
		{"environment list", []string{"stack", "environment", "list", "--id", "net"},
			[]string{"gantry stack env list --id ID"}},
		{"environment delete", []string{"stack", "environment", "delete", "--id", "net", "FOO"},
			[]string{"gantry stack env delete --id ID NAME"}},
		{"stack run list", []string{"stack", "run", "list", "--id", "net", "--max-results", "5"},
			[]string{"gantry run list --stack ID"}},
		{"lock", []string{"stack", "lock", "--id", "net"},
			[]string{`spacectl's "stack lock" has no Gantry equivalent`}},
		{"set-current-commit", []string{"stack", "set-current-commit", "--id", "net", "--sha", "abc"},
			[]string{`spacectl's "stack set-current-commit" has no Gantry equivalent`, "gantry stack deploy --id ID --sha SHA"}},
		{"state pull", []string{"stack", "state", "pull", "--id", "net"},
			[]string{`unknown command "pull" for "gantry stack state"`, "gantry stack state show --id ID"}},
		{"profile", []string{"profile", "login", "acme"},
			[]string{`unknown command "profile" for "gantry"`, "gantry login --url URL"}},
		{"run retry --run", []string{"run", "retry", "--id", "net", "--run", "run-1"},
			[]string{"unknown flag: --run", "spacectl's --run in Gantry: --id RUN"}},
		{"run list --id", []string{"run", "list", "--id", "net"},
			[]string{"unknown flag: --id", "gantry run list --stack ID"}},
		{"run list --max-results", []string{"run", "list", "--max-results", "5"},
			[]string{"unknown flag: --max-results", "--limit N"}},
		{"run cancel --tail", []string{"run", "cancel", "--id", "run-1", "--tail"},
			[]string{"unknown flag: --tail", "gantry stack logs --id ID --run RUN -f"}},
		{"preview --auto-confirm", []string{"stack", "preview", "--id", "net", "--auto-confirm"},
			[]string{"unknown flag: --auto-confirm", "gantry stack deploy takes --auto-confirm"}},
		{"task --noinit", []string{"stack", "task", "--id", "net", "--noinit", "--", "ls"},
			[]string{"spacectl's --noinit has no Gantry equivalent"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			isolate(t)
			api := newFake(t, nil)
			code, out, errOut := runMain(append([]string{"--url", api.srv.URL, "--token", "tok"}, tt.args...)...)
			if code != 2 {
				t.Errorf("exit %d, want 2\nstdout: %s\nstderr: %s", code, out, errOut)
			}
			for _, s := range tt.want {
				if !strings.Contains(errOut, s) {
					t.Errorf("stderr lacks %q:\n%s", s, errOut)
				}
			}
			if strings.Contains(errOut, "Usage:") {
				t.Errorf("stderr has the usage after the hint:\n%s", errOut)
			}
			if reqs := api.requests(); len(reqs) > 0 {
				t.Errorf("requests %q", reqs)
			}
		})
	}
}

// An unknown subcommand is reported as such, with the group's usage, even
// when flags the group does not have follow it; an unknown flag alone
// stays an unknown flag.
func TestUnknownSubcommandWithFlags(t *testing.T) {
	isolate(t)
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"stack", "bogus", "--id", "net"}, `Error: unknown command "bogus" for "gantry stack"`},
		{[]string{"stack", "env", "bogus", "--id", "net", "--secret"}, `Error: unknown command "bogus" for "gantry stack env"`},
		{[]string{"run", "--id", "x", "bogus"}, `Error: unknown command "bogus" for "gantry run"`},
		{[]string{"stack", "--bogus", "--url", "http://127.0.0.1:1"}, "Error: unknown flag: --bogus"},
		{[]string{"bogus", "--id", "net"}, `Error: unknown command "bogus" for "gantry"`},
	} {
		code, _, errOut := runMain(tt.args...)
		if code != 2 || !strings.Contains(errOut, tt.want) || !strings.Contains(errOut, "Usage:") {
			t.Errorf("%q: exit %d, want 2 and %q with the usage:\n%s", tt.args, code, tt.want, errOut)
		}
	}
}
