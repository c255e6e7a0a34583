package cli

import (
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// Users coming from spacectl, Spacelift's CLI, type its commands and flags.
// Where Gantry has an equivalent, the usage error names it (see docs/cli.md,
// "Coming from spacectl"); the spacectl names that mean the same as a Gantry
// flag are accepted instead (--tail, --auto-confirm, --run-latest,
// --write-only, --output-id).

// spacectlCommands are spacectl's commands that Gantry spells differently,
// by their words after "spacectl" (a group's own entry serves its
// subcommands without one), with what to type instead.
var spacectlCommands = map[string]string{
	"profile":                  "gantry login --url URL [--token T | --sso] and gantry logout (one saved login, no profiles)",
	"audit-trail":              "gantry audit list",
	"stack approve":            "gantry run review --id RUN --approve [--note N] (--id is the run's)",
	"stack reject":             "gantry run review --id RUN --reject [--note N] (--id is the run's)",
	"stack retry":              "gantry run retry --id RUN [--wait | --tail] (--id is the run's)",
	"stack cancel":             "gantry run cancel --id RUN (--id is the run's)",
	"stack stop":               "gantry run stop --id RUN (--id is the run's)",
	"stack environment":        "gantry stack env set | list | delete --id ID",
	"stack environment setvar": "gantry stack env set --id ID NAME VALUE [--secret]",
	"stack environment list":   "gantry stack env list --id ID",
	"stack environment delete": "gantry stack env delete --id ID NAME",
	"stack environment mount":  "mounted files belong to contexts: gantry context file set --id C PATH --from-file F [--secret], then gantry context attach --id C --stack ID",
	"stack run":                "gantry run list --stack ID [--limit N]",
	"stack run list":           "gantry run list --stack ID [--limit N]",
	"stack lock":               "none: Gantry has no stack locks (stack:lock and stack:unlock are OpenTofu state locks, taken through the state backend)",
	"stack unlock":             "none: Gantry has no stack locks (stack:lock and stack:unlock are OpenTofu state locks, taken through the state backend)",
	"stack set-current-commit": "none: a stack keeps no current commit; a run takes the head of its branch, or the commit given: gantry stack deploy --id ID --sha SHA",
	"stack local-preview":      "none: runs plan a commit of the stack's repository; push it, then gantry stack preview --id ID --sha SHA --tail",
	"stack resources":          "gantry stack state show --id ID (the current state document)",
	"stack state pull":         "gantry stack state show --id ID",
	"workerpool worker":        "gantry workerpool workers --id POOL, and gantry worker drain --pool POOL --id WORKER",
}

// spacectlFlags are spacectl's flags that Gantry spells differently: by
// flag name, the commands they concern (a command path, or a path ending
// in a space for every command under it; none for every command) and
// what to type instead.
var spacectlFlags = []struct {
	flag string
	cmds []string
	hint string
}{
	{"run", []string{"gantry run "}, "--id RUN (gantry run commands take the run's id as --id, and no stack id)"},
	{"id", []string{"gantry run list"}, "gantry run list --stack ID"},
	{"max-results", nil, "--limit N"},
	{"write-only", nil, "--secret"},
	{"tail", nil, "gantry stack logs --id ID --run RUN -f (deploy, preview, destroy, task, confirm and run retry take --tail)"},
	{"auto-confirm", nil, "gantry stack confirm --id ID --run RUN (gantry stack deploy takes --auto-confirm)"},
	{"run-latest", nil, "gantry run list --stack ID --limit 1 (gantry stack logs takes --run-latest)"},
	{"noinit", []string{"gantry stack task"}, "none: a task always runs init first"},
	{"show-labels", []string{"gantry stack list"}, "none: gantry stack list always shows the labels"},
}

// hintError is a usage error that names what to type instead: the usage
// would only bury it.
type hintError struct{ msg string }

func (e *hintError) Error() string { return e.msg }

// groupAnnotation marks the commands that only hold subcommands.
const groupAnnotation = "gantry-group"

// spacectlFlagError is the root's flag error function: an unknown flag
// that spacectl has gets what Gantry calls it.
func spacectlFlagError(cmd *cobra.Command, err error) error {
	var ne *pflag.NotExistError
	if !errors.As(err, &ne) {
		return err
	}
	name := ne.GetSpecifiedName()
	for _, f := range spacectlFlags {
		if f.flag != name || !concerns(f.cmds, cmd.CommandPath()) {
			continue
		}
		return &hintError{msg: fmt.Sprintf("%s\n%s", err, explain("--"+name, f.hint))}
	}
	return err
}

// explain says what spacectl's what is in Gantry; a hint starting "none:"
// says why there is nothing.
func explain(what, hint string) string {
	if why, none := strings.CutPrefix(hint, "none: "); none {
		return fmt.Sprintf("spacectl's %s has no Gantry equivalent: %s", what, why)
	}
	return fmt.Sprintf("spacectl's %s in Gantry: %s", what, hint)
}

func concerns(cmds []string, path string) bool {
	if len(cmds) == 0 {
		return true
	}
	for _, c := range cmds {
		if c == path || (strings.HasSuffix(c, " ") && strings.HasPrefix(path, c)) {
			return true
		}
	}
	return false
}

// unknownCommand explains a failed command line whose words name no
// command: an unknown subcommand of a group, even with flags after it
// (which the group, having none of them, would otherwise report first),
// and spacectl's commands with what Gantry calls them. It returns nil
// when args name a command.
func unknownCommand(root *cobra.Command, args []string) (*cobra.Command, error) {
	cmd, rest, _ := root.Find(args)
	if cmd == nil || (cmd != root && cmd.Annotations[groupAnnotation] == "") {
		return nil, nil
	}
	w := words(cmd, rest)
	if len(w) == 0 {
		return nil, nil
	}
	path := cmd.CommandPath()
	msg := fmt.Sprintf("unknown command %q for %q", w[0], path)
	prefix := strings.TrimPrefix(strings.TrimPrefix(path, root.Name()), " ")
	for n := min(len(w), 2); n > 0; n-- {
		key := strings.TrimPrefix(prefix+" "+strings.Join(w[:n], " "), " ")
		if hint, ok := spacectlCommands[key]; ok {
			return cmd, &hintError{msg: msg + "\n" + explain(strconv.Quote(key), hint)}
		}
	}
	if cmd == root {
		return nil, nil // cobra's own error, with its suggestions
	}
	return cmd, usageErrorf("%s", msg)
}

// words returns the words of args that are neither flags nor, as far as
// cmd knows its flags, their values: as cobra's own search does, an
// unknown --flag without "=" is taken to have a value.
func words(cmd *cobra.Command, args []string) []string {
	cmd.InheritedFlags() // merges the persistent flags into cmd.Flags()
	var out []string
	for i := 0; i < len(args); i++ {
		s := args[i]
		switch {
		case s == "--":
			return append(out, args[i+1:]...)
		case strings.HasPrefix(s, "--"):
			if !strings.Contains(s, "=") && !isBoolFlag(cmd.Flags().Lookup(s[2:])) && value(args, i+1) {
				i++
			}
		case strings.HasPrefix(s, "-") && len(s) > 1:
			if len(s) == 2 && !isBoolFlag(cmd.Flags().ShorthandLookup(s[1:])) && value(args, i+1) {
				i++
			}
		default:
			out = append(out, s)
		}
	}
	return out
}

// value reports whether args[i] can be a flag's value: it is there and
// is no flag.
func value(args []string, i int) bool {
	return i < len(args) && !strings.HasPrefix(args[i], "-")
}

func isBoolFlag(f *pflag.Flag) bool { return f != nil && f.NoOptDefVal != "" }
