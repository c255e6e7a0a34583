package cli

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/spf13/cobra"

	"github.com/gantry-iac/gantry/internal/apiv1"
	"github.com/gantry-iac/gantry/internal/client"
)

func (a *app) apiKeyCommand() *cobra.Command {
	cmd := group("apikey", "Manage API keys (create shows the token once)",
		a.apiKeyCreate(), a.apiKeyList(), a.apiKeyRevoke())
	cmd.Aliases = []string{"api-key"}
	return cmd
}

func (a *app) apiKeyCreate() *cobra.Command {
	var in apiv1.APIKeyCreate
	var expiresAt string
	cmd := &cobra.Command{
		Use:   "create",
		Short: "Create an API key and print its token, once",
		Args:  cobra.NoArgs,
	}
	cmd.RunE = a.withClient(func(ctx context.Context, c *client.Client, _ []string) error {
		if in.ExpiresIn != "" {
			if _, ok := apiv1.ParseExpiresIn(in.ExpiresIn); !ok {
				flag := "expires"
				if cmd.Flags().Changed("expires-in") {
					flag = "expires-in"
				}
				return usageErrorf("%s %q: want a positive duration such as \"720h\" or a number of days such as \"30d\" (at most %d)",
					a.given(flag), in.ExpiresIn, apiv1.MaxExpiryDays)
			}
		}
		if cmd.Flags().Changed("expires-at") {
			t, err := time.Parse(time.RFC3339, expiresAt)
			if err != nil {
				return usageErrorf("--expires-at %q: want an RFC 3339 time such as 2027-01-31T00:00:00Z", expiresAt)
			}
			in.ExpiresAt = &t
		}
		k, err := c.CreateAPIKey(ctx, in)
		if err != nil {
			return err
		}
		expires := "never"
		if k.ExpiresAt != nil {
			expires = fmtTime(*k.ExpiresAt)
		}
		// With -o json the whole object, token included.
		return a.print(k, func(w io.Writer) {
			field(w, "ID", k.ID)
			field(w, "Name", k.Name)
			field(w, "Created by", orDash(k.CreatedBy))
			field(w, "Created", fmtTime(k.CreatedAt))
			field(w, "Expires", expires)
			fmt.Fprintln(w)
			fmt.Fprintln(w, "Store this token now: it is shown only this once and cannot be retrieved again.")
			fmt.Fprintln(w, k.Token)
		})
	})
	f := cmd.Flags()
	f.StringVar(&in.Name, "name", "", "key name (unique among the keys not revoked)")
	f.BoolVar(&in.Admin, "admin", false, "an admin key, which may do everything (admins only); without it the key may do what roles bound to it grant (gantry role bind --apikey)")
	f.BoolVar(&in.Automation, "automation", false, "signed in with single sign-on: an automation key owned by nobody (for CI) rather than a key of your own; needs apikey:manage")
	f.StringVar(&in.ExpiresIn, "expires", "", `lifetime: a duration such as "720h" or days such as "30d" (default: never expires)`)
	f.StringVar(&in.ExpiresIn, "expires-in", "", "same as --expires")
	_ = f.MarkHidden("expires-in")
	f.StringVar(&expiresAt, "expires-at", "", "expiry as an RFC 3339 time (default: never expires)")
	exclusive(cmd, "expires", "expires-in", "expires-at")
	required(cmd, "name")
	return cmd
}

// apiKeyStatus says whether a key works at now: active, expired or revoked.
func apiKeyStatus(k apiv1.APIKey, now time.Time) string {
	switch {
	case k.RevokedAt != nil:
		return "revoked"
	case k.ExpiresAt != nil && !now.Before(*k.ExpiresAt):
		return "expired"
	}
	return "active"
}

func optTime(t *time.Time, none string) string {
	if t == nil {
		return none
	}
	return fmtTime(*t)
}

func (a *app) apiKeyList() *cobra.Command {
	return &cobra.Command{
		Use:   "list",
		Short: "List API keys, revoked ones too (never their tokens)",
		Args:  cobra.NoArgs,
		RunE: a.withClient(func(ctx context.Context, c *client.Client, _ []string) error {
			l, err := c.ListAPIKeys(ctx)
			if err != nil {
				return err
			}
			now := time.Now()
			return a.print(orEmpty(l.Items), func(w io.Writer) {
				row(w, "ID", "NAME", "STATUS", "CREATED BY", "CREATED", "LAST USED", "EXPIRES", "REVOKED")
				for _, k := range l.Items {
					row(w, k.ID, k.Name, apiKeyStatus(k, now), orDash(k.CreatedBy), fmtTime(k.CreatedAt),
						optTime(k.LastUsedAt, "-"), optTime(k.ExpiresAt, "never"), optTime(k.RevokedAt, "-"))
				}
			})
		}),
	}
}

func (a *app) apiKeyRevoke() *cobra.Command {
	var id string
	cmd := &cobra.Command{
		Use:   "revoke",
		Short: "Revoke an API key: it stops working at once",
		Args:  cobra.NoArgs,
		RunE: a.withClient(func(ctx context.Context, c *client.Client, _ []string) error {
			if err := c.RevokeAPIKey(ctx, id); err != nil {
				return err
			}
			if a.output == "json" {
				return a.printJSON(map[string]any{"revoked": id})
			}
			fmt.Fprintf(a.stdout, "Revoked API key %q: it no longer authenticates.\n", id)
			return nil
		}),
	}
	cmd.Flags().StringVar(&id, "id", "", "key id (see gantry api-key list)")
	required(cmd, "id")
	return cmd
}
