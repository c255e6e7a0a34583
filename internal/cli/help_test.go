package cli

import (
	"io"
	"regexp"
	"strings"
	"testing"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// allCommands returns every command of the tree, the root included.
func allCommands() []*cobra.Command {
	var out []*cobra.Command
	var walk func(*cobra.Command)
	walk = func(c *cobra.Command) {
		out = append(out, c)
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	walk((&app{stdout: io.Discard, stderr: io.Discard}).rootCommand())
	return out
}

// pflag takes the first back-quoted words of a usage string as the name
// of the flag's value: "`gantry login --sso`" in a usage made --help show
// "--cli-token-ttl gantry login --sso   how long ...". Quote with "" instead.
func TestFlagUsagesHaveNoBackQuotes(t *testing.T) {
	for _, cmd := range allCommands() {
		cmd.Flags().VisitAll(func(f *pflag.Flag) {
			if strings.Contains(f.Usage, "`") {
				t.Errorf("%s --%s: usage %q has a back-quote, which --help shows as the value's name", cmd.CommandPath(), f.Name, f.Usage)
			}
		})
	}
}

// An update changes only the flags given: its help shows no default (the
// value create would use), neither pflag's "(default X)" nor one written
// in a usage.
func TestUpdateHelpShowsNoDefaults(t *testing.T) {
	defaultWords := regexp.MustCompile(`(?i)\(default|default:|default,`)
	n := 0
	for _, cmd := range allCommands() {
		if cmd.Name() != "update" {
			continue
		}
		n++
		cmd.LocalFlags().VisitAll(func(f *pflag.Flag) {
			switch f.DefValue {
			case "", "false", "0", "[]":
			default:
				t.Errorf("%s --%s: help shows (default %s)", cmd.CommandPath(), f.Name, f.DefValue)
			}
			if defaultWords.MatchString(f.Usage) {
				t.Errorf("%s --%s: usage %q names a default", cmd.CommandPath(), f.Name, f.Usage)
			}
		})
		if help := cmd.LocalFlags().FlagUsages(); strings.Contains(help, "(default") {
			t.Errorf("%s --help shows a default:\n%s", cmd.CommandPath(), help)
		}
	}
	if n < 3 {
		t.Fatalf("found %d update commands", n)
	}
}
