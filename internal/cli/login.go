package cli

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/gantry-iac/gantry/internal/client"
)

func (a *app) loginCommand() *cobra.Command {
	var (
		sso       bool
		noBrowser bool
		timeout   time.Duration
	)
	cmd := &cobra.Command{
		Use:   "login",
		Short: "Sign in (--sso) or check a token, and save the server and token for later commands",
		Long: `Save a server URL and a token in $GANTRY_CONFIG, else
$XDG_CONFIG_HOME/gantry/config.json, else ~/.config/gantry/config.json
(mode 0600).

With --sso, sign in through the server's single sign-on: gantry prints (and
opens, unless --no-browser) an address; after you sign in at your identity
provider the browser comes back to gantry on a localhost port, and gantry
stores a session token (valid for the server's --cli-token-ttl, 7 days by
default). Otherwise the token is --token, or read from standard input.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			url := a.url
			if url == "" {
				cfg, err := loadConfig()
				if err != nil {
					return err
				}
				url = cfg.URL
			}
			if url == "" {
				url = defaultURL
			}
			token := a.token
			switch {
			case sso:
				var err error
				if token, err = a.ssoLogin(cmd.Context(), url, !noBrowser, timeout); err != nil {
					return err
				}
			case !cmd.Flags().Changed("token") || token == "":
				var err error
				if token, err = a.readToken(url); err != nil {
					return err
				}
			}
			actor, err := checkLogin(cmd.Context(), url, token)
			if err != nil {
				return fmt.Errorf("login to %s: %w", url, err)
			}
			path, err := saveConfig(config{URL: url, Token: token})
			if err != nil {
				return err
			}
			if a.output == "json" {
				return a.printJSON(map[string]string{"url": url, "config": path, "actor": actor})
			}
			fmt.Fprintf(a.stdout, "Logged in to %s as %s; credentials saved in %s\n", url, actor, path)
			return nil
		},
	}
	cmd.Flags().BoolVar(&sso, "sso", false, "sign in with the server's single sign-on (OpenID Connect) in a browser")
	cmd.Flags().BoolVar(&noBrowser, "no-browser", false, "with --sso: only print the address, do not open a browser")
	cmd.Flags().DurationVar(&timeout, "timeout", 5*time.Minute, "with --sso: how long to wait for the sign-in")
	return cmd
}

// isTerminal reports whether r is a terminal (a character device), where
// a prompt is read by someone.
var isTerminal = func(r io.Reader) bool {
	f, ok := r.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

// readToken reads one line from standard input, prompting on stderr when
// it is a terminal (a piped token needs no prompt, and errors would be
// glued to it).
func (a *app) readToken(url string) (string, error) {
	if isTerminal(a.stdin) {
		fmt.Fprintf(a.stderr, "API token for %s: ", url)
	}
	line, err := bufio.NewReader(a.stdin).ReadString('\n')
	if err != nil && line == "" {
		return "", fmt.Errorf("read token from standard input: %w", err)
	}
	token := strings.TrimSpace(line)
	if token == "" {
		return "", errors.New("no token given")
	}
	return token, nil
}

func (a *app) logoutCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "logout",
		Short: "End the saved session at the server and forget the URL and token saved by login",
		Long: `Forget the URL and token saved by login. A session token of
gantry login --sso is first ended at the server (POST /auth/logout), so it
stops working at once; if the server cannot be reached or refuses, gantry
says so and forgets the token all the same (it then stays valid until it
expires). API keys are not revoked: gantry apikey revoke does that.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			path, err := configPath()
			if err != nil {
				return err
			}
			if cfg, err := loadConfig(); err == nil && cfg.URL != "" && strings.HasPrefix(cfg.Token, "gss_") {
				ctx, cancel := context.WithTimeout(cmd.Context(), 10*time.Second)
				c := client.New(cfg.URL, cfg.Token, client.WithUserAgent("gantry-cli/"+version()))
				if err := c.Logout(ctx); err != nil {
					fmt.Fprintf(a.stderr, "Warning: could not end the session at %s (%v); forgetting it here anyway: it stays valid until it expires\n", cfg.URL, err)
				} else {
					fmt.Fprintf(a.stderr, "Signed out of %s\n", cfg.URL)
				}
				cancel()
			}
			err = os.Remove(path)
			switch {
			case errors.Is(err, fs.ErrNotExist):
				fmt.Fprintln(a.stderr, "Not logged in.")
				return nil
			case err != nil:
				return fmt.Errorf("logout: %w", err)
			}
			fmt.Fprintf(a.stderr, "Removed %s\n", path)
			return nil
		},
	}
}
