// Package cli is the cobra command tree of the gantry binary. It is thin:
// commands parse flags, call the API through package client and print.
package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/gantry-iac/gantry/internal/client"
	"github.com/gantry-iac/gantry/internal/errs"
)

// extraCommands are added to the root command; other files of the package
// (server, worker) append their constructors from init functions.
var extraCommands []func() *cobra.Command

// pollInterval is how often --wait polls a run.
var pollInterval = 250 * time.Millisecond

// stdin is where login reads a token and `stack env set NAME -` a value.
var stdin io.Reader = os.Stdin

const defaultURL = "http://127.0.0.1:8080"

func init() {
	// Run every PersistentPreRunE from the root down, so that the root's
	// (environment variables, validation) also runs for commands that have
	// their own.
	cobra.EnableTraverseRunHooks = true
}

// app holds what the commands of one Main call share.
type app struct {
	stdout, stderr io.Writer
	stdin          io.Reader

	url, token, output string // persistent flags

	// onCommandLine are the flags given on the command line, not filled
	// from GANTRY_<FLAG> or GANTRY_<FLAG>_FILE (which mark them changed too).
	onCommandLine map[string]bool

	// ready is set once flags and arguments are validated: errors after it
	// are run errors (exit 1), before it usage errors (exit 2).
	ready bool

	// noToken, set by client when it sends no token, says why and how to
	// send one (see explain).
	noToken string
}

// Main runs the gantry command line with args (without the program name)
// and returns the exit code: 0 success, 1 failure, 2 usage error.
func Main(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	a := &app{stdout: stdout, stderr: stderr, stdin: stdin}
	root := a.rootCommand()
	root.SetArgs(args)
	root.SetOut(stdout)
	root.SetErr(stderr)
	root.SetIn(a.stdin)
	cmd, err := root.ExecuteContextC(ctx)
	if err == nil {
		return 0
	}
	if group, uerr := unknownCommand(root, args); uerr != nil {
		cmd, err = group, uerr
	}
	fmt.Fprintf(stderr, "Error: %s\n", err)
	var ue *usageError
	var fe *envFileError
	var he *hintError
	if errors.As(err, &fe) {
		return 2 // the command line is right: its usage would not help
	}
	if errors.As(err, &he) {
		return 2 // the error says what to type instead: the usage would bury it
	}
	if !a.ready || errors.As(err, &ue) {
		fmt.Fprint(stderr, cmd.UsageString())
		return 2
	}
	return 1
}

func (a *app) rootCommand() *cobra.Command {
	root := &cobra.Command{
		Use:   "gantry",
		Short: "Gantry orchestrates OpenTofu and Terraform runs",
		Long: `Gantry orchestrates OpenTofu and Terraform runs.

Every flag can also be set with the environment variable GANTRY_<FLAG>
(upper case, dashes as underscores, e.g. GANTRY_TOKEN), or read from the file
named by GANTRY_<FLAG>_FILE. A flag given on the command line wins. The
update commands are the exception: they change only what their command
line names (--url, --token and --output still come from the environment).`,
		SilenceErrors:     true,
		SilenceUsage:      true,
		PersistentPreRunE: a.prepare,
	}
	root.SetFlagErrorFunc(spacectlFlagError)
	pf := root.PersistentFlags()
	pf.StringVar(&a.url, "url", "", "server URL (default: from gantry login, else "+defaultURL+")")
	pf.StringVar(&a.token, "token", "", "API token (default: from gantry login)")
	pf.StringVarP(&a.output, "output", "o", "table", "output format: table or json")

	root.AddCommand(
		a.loginCommand(), a.logoutCommand(), a.whoamiCommand(),
		a.spaceCommand(), a.stackCommand(), a.runCommand(),
		a.policyCommand(),
		a.contextCommand(),
		a.apiKeyCommand(), a.roleCommand(), a.userCommand(),
		a.integrationCommand(),
		a.driftCommand(),
		a.auditCommand(),
		a.workerpoolCommand(), a.workerCommand(),
		a.versionCommand(),
	)
	for _, newCmd := range extraCommands {
		root.AddCommand(newCmd())
	}
	return root
}

// prepare runs before every command: it fills flags from the environment
// and validates them, so that missing flags are usage errors.
func (a *app) prepare(cmd *cobra.Command, _ []string) error {
	if a.onCommandLine == nil {
		a.onCommandLine = map[string]bool{}
		cmd.Flags().Visit(func(f *pflag.Flag) { a.onCommandLine[f.Name] = true })
	}
	flags := cmd.Flags()
	if cmd.Name() == "update" {
		// An update changes what its command line names: a GANTRY_SPACE
		// or GANTRY_NAME left in the environment for other commands must
		// not move or rename what it updates. --url, --token and --output
		// still come from the environment.
		flags = cmd.InheritedFlags()
	}
	if err := applyEnv(flags); err != nil {
		return err
	}
	if err := cmd.ValidateRequiredFlags(); err != nil {
		return err
	}
	if err := a.checkExclusive(cmd); err != nil {
		return err
	}
	if err := cmd.ValidateFlagGroups(); err != nil {
		return err
	}
	if a.output != "table" && a.output != "json" {
		return fmt.Errorf("invalid --output %q: want table or json", a.output)
	}
	a.ready = true
	return nil
}

// envName is the environment variable of a flag: GANTRY_<FLAG>.
func envName(flag string) string {
	return "GANTRY_" + strings.ToUpper(strings.ReplaceAll(flag, "-", "_"))
}

// applyEnv sets every flag of fs not given on the command line from
// GANTRY_<FLAG>, or from the file named by GANTRY_<FLAG>_FILE (unless the
// command has a --<flag>-file flag, which that variable sets). Empty
// variables count as unset.
func applyEnv(fs *pflag.FlagSet) error {
	var err error
	fs.VisitAll(func(f *pflag.Flag) {
		if err != nil || f.Changed || f.Name == "help" {
			return
		}
		name := envName(f.Name)
		value := os.Getenv(name)
		if value == "" {
			if fs.Lookup(f.Name+"-file") != nil {
				// GANTRY_<FLAG>_FILE is the --<flag>-file flag's own
				// variable (--secret and --secret-file): it sets that
				// flag, not this one as well.
				return
			}
			file := os.Getenv(name + "_FILE")
			if file == "" {
				return
			}
			b, rerr := os.ReadFile(file)
			if rerr != nil {
				err = &envFileError{name: name + "_FILE", err: rerr}
				return
			}
			value = strings.TrimRight(string(b), "\r\n")
			_ = fs.SetAnnotation(f.Name, fromFile, []string{file})
		}
		if serr := fs.Set(f.Name, value); serr != nil {
			err = fmt.Errorf("%s: invalid value for --%s: %w", name, f.Name, serr)
		}
	})
	return err
}

// fromFile is the annotation applyEnv puts on a flag it read from
// GANTRY_<FLAG>_FILE: the file's path.
const fromFile = "gantry-from-file"

// flagFile returns the file the flag's value was read from
// (GANTRY_<FLAG>_FILE), or "".
func flagFile(fs *pflag.FlagSet, name string) string {
	if f := fs.Lookup(name); f != nil && len(f.Annotations[fromFile]) == 1 {
		return f.Annotations[fromFile][0]
	}
	return ""
}

// envFileError is a GANTRY_<FLAG>_FILE that cannot be read.
type envFileError struct {
	name string // GANTRY_<FLAG>_FILE
	err  error
}

func (e *envFileError) Error() string { return e.name + ": " + e.err.Error() }
func (e *envFileError) Unwrap() error { return e.err }

// usageError is an error in how a command was called.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func usageErrorf(format string, args ...any) error {
	return &usageError{msg: fmt.Sprintf(format, args...)}
}

// client returns an API client for the effective URL and token: flags (or
// their environment variables) first, then the login configuration. The
// configured token is only sent to the configured server.
func (a *app) client() (*client.Client, error) {
	url, token := a.url, a.token
	if url == "" || token == "" {
		cfg, err := loadConfig()
		if err != nil {
			return nil, err
		}
		if url == "" {
			url = cfg.URL
		}
		if token == "" && cfg.URL != "" && sameURL(url, cfg.URL) {
			token = cfg.Token
		}
		if url == "" {
			url = defaultURL
		}
		switch {
		case token != "":
		case cfg.Token != "":
			a.noToken = fmt.Sprintf("No token was sent: the token saved by gantry login is for %s, not %s (a saved token goes only to the server it was saved for). "+
				"Pass --token (or GANTRY_TOKEN), or run: gantry login --url %s", cfg.URL, url, url)
		default:
			a.noToken = fmt.Sprintf("No token was sent: pass --token (or GANTRY_TOKEN), or run: gantry login --url %s", url)
		}
	}
	return client.New(url, token, client.WithUserAgent("gantry-cli/"+version())), nil
}

// explain adds to an error of the API what the CLI knows of it: a server
// that wants a token it was not sent hears why none was and how to send
// one.
func (a *app) explain(err error) error {
	if err != nil && a.noToken != "" && errs.Is(err, errs.Unauthenticated) {
		return fmt.Errorf("%w\n%s", err, a.noToken)
	}
	return err
}

func sameURL(a, b string) bool {
	return strings.TrimRight(a, "/") == strings.TrimRight(b, "/")
}

// apiFunc is the body of a command that calls the API.
type apiFunc func(ctx context.Context, c *client.Client, args []string) error

// withClient makes a RunE that builds the client and calls fn.
func (a *app) withClient(fn apiFunc) func(*cobra.Command, []string) error {
	return func(cmd *cobra.Command, args []string) error {
		c, err := a.client()
		if err != nil {
			return err
		}
		return a.explain(fn(cmd.Context(), c, args))
	}
}

// group makes a command that only holds subcommands.
func group(use, short string, subs ...*cobra.Command) *cobra.Command {
	cmd := &cobra.Command{
		Use:         use,
		Short:       short,
		Annotations: map[string]string{groupAnnotation: "true"},
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) > 0 {
				return usageErrorf("unknown command %q for %q", args[0], cmd.CommandPath())
			}
			return cmd.Help()
		},
	}
	cmd.AddCommand(subs...)
	return cmd
}

// exclusiveGroups is the annotation exclusive puts on a flag: the groups
// it is in, each its members joined by spaces.
const exclusiveGroups = "gantry-exclusive"

// exclusive marks flags of cmd that cannot be given together. Unlike
// cobra's own check (whose message lists the whole group, hidden flags
// included), prepare's names only the flags the user gave.
func exclusive(cmd *cobra.Command, names ...string) {
	for _, n := range names {
		f := cmd.Flags().Lookup(n)
		if f == nil {
			panic("exclusive: no flag " + n) // a programming error
		}
		if f.Annotations == nil {
			f.Annotations = map[string][]string{}
		}
		f.Annotations[exclusiveGroups] = append(f.Annotations[exclusiveGroups], strings.Join(names, " "))
	}
}

// checkExclusive refuses two flags of one exclusive group, naming them as
// given: --flag, or GANTRY_FLAG when it came from the environment.
func (a *app) checkExclusive(cmd *cobra.Command) error {
	var err error
	cmd.Flags().Visit(func(f *pflag.Flag) {
		for _, g := range f.Annotations[exclusiveGroups] {
			var given []string
			for _, n := range strings.Fields(g) {
				if o := cmd.Flags().Lookup(n); o != nil && o.Changed {
					given = append(given, a.given(n))
				}
			}
			if len(given) > 1 && err == nil {
				err = usageErrorf("%s cannot be combined", strings.Join(given, " and "))
			}
		}
	})
	return err
}

// given names flag as the user gave it: --name on the command line, else
// the environment variable it was read from.
func (a *app) given(name string) string {
	if a.onCommandLine[name] {
		return "--" + name
	}
	return envName(name)
}

// updateFlags readies the flags an update command shares with its create
// command. An update changes only the flags given, so no flag shows the
// value create would default to (a bool or int default is shown as
// none), and usages names the flags whose create usage speaks of
// defaults, with the update's own.
func updateFlags(cmd *cobra.Command, usages map[string]string) {
	for name, u := range usages {
		f := cmd.Flags().Lookup(name)
		if f == nil {
			panic("updateFlags: no flag " + name) // a programming error
		}
		f.Usage = u
	}
	cmd.LocalFlags().VisitAll(func(f *pflag.Flag) {
		switch f.Value.Type() {
		case "bool":
			f.DefValue = "false"
		case "int":
			f.DefValue = "0"
		case "string":
			f.DefValue = ""
		}
	})
}

// required marks flags of cmd as required.
func required(cmd *cobra.Command, names ...string) {
	for _, n := range names {
		if err := cmd.MarkFlagRequired(n); err != nil {
			panic(err) // a programming error: the flag does not exist
		}
	}
}
