package cli

import (
	"bufio"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/gantry-iac/gantry/internal/client"
)

func (a *app) loginCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "login",
		Short: "Check a token against a server and save both for later commands",
		Long: `Check a token against a server and save the URL and token in
$GANTRY_CONFIG, else $XDG_CONFIG_HOME/gantry/config.json, else
~/.config/gantry/config.json (mode 0600). Without --token the token is read
from standard input.`,
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
			if !cmd.Flags().Changed("token") || token == "" {
				var err error
				if token, err = a.readToken(url); err != nil {
					return err
				}
			}
			c := client.New(url, token, client.WithUserAgent("gantry-cli/"+version()))
			if _, err := c.ListStacks(cmd.Context(), client.StackListOptions{ListOptions: client.ListOptions{Limit: 1}}); err != nil {
				return fmt.Errorf("login to %s: %w", url, err)
			}
			path, err := saveConfig(config{URL: url, Token: token})
			if err != nil {
				return err
			}
			if a.output == "json" {
				return a.printJSON(map[string]string{"url": url, "config": path})
			}
			fmt.Fprintf(a.stdout, "Logged in to %s; credentials saved in %s\n", url, path)
			return nil
		},
	}
}

// readToken reads one line from standard input, prompting on stderr.
func (a *app) readToken(url string) (string, error) {
	fmt.Fprintf(a.stderr, "API token for %s: ", url)
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
		Short: "Forget the URL and token saved by login",
		Args:  cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			path, err := configPath()
			if err != nil {
				return err
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
