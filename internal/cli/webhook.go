package cli

import (
	"context"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"

	"github.com/spf13/cobra"

	"github.com/gantry-iac/gantry/internal/apiv1"
	"github.com/gantry-iac/gantry/internal/client"
)

func init() {
	extraCommands = append(extraCommands, webhookCommand, notificationCommand)
}

// The webhook's own URL is --webhook-url: --url is the root's flag for the
// server URL (and GANTRY_URL its variable).

// cmdApp is the app of a command added through extraCommands, which are
// built without one: the root's persistent flags are read from cmd when it
// runs (the root's prepare has validated them by then).
func cmdApp(cmd *cobra.Command) *app {
	f := cmd.Flags()
	a := &app{stdout: cmd.OutOrStdout(), stderr: cmd.ErrOrStderr(), stdin: cmd.InOrStdin(), ready: true}
	a.url, _ = f.GetString("url")
	a.token, _ = f.GetString("token")
	a.output, _ = f.GetString("output")
	return a
}

// withCmdApp makes a RunE that builds the app and its client and calls fn.
func withCmdApp(fn func(ctx context.Context, a *app, c *client.Client) error) func(*cobra.Command, []string) error {
	return func(cmd *cobra.Command, _ []string) error {
		a := cmdApp(cmd)
		c, err := a.client()
		if err != nil {
			return err
		}
		return a.explain(fn(cmd.Context(), a, c))
	}
}

func webhookCommand() *cobra.Command {
	return group("webhook", "Manage notification endpoints (webhooks, Slack and Teams incoming webhooks, email over SMTP)",
		webhookCreate(), webhookList(), webhookShow(), webhookUpdate(), webhookDelete())
}

// webhookFlags are the flags create and update share.
type webhookFlags struct {
	url, secret, secretFile string
	headers, labels         []string
	retries                 int
	enabled                 bool
	email                   emailFlags
}

// emailFlags are the SMTP settings of an email endpoint.
type emailFlags struct {
	host, username, passwordFile, tls, caFile, from string
	port                                            int
	to                                              []string
}

// emailFlagNames are the flags only email endpoints take.
var emailFlagNames = []string{"smtp-host", "smtp-port", "smtp-username", "smtp-password-file",
	"tls", "smtp-ca-file", "from", "to"}

func (w *webhookFlags) register(cmd *cobra.Command) {
	f := cmd.Flags()
	f.StringVar(&w.url, "webhook-url", "", "where messages go: an http(s) URL (for --slack and --teams, the incoming-webhook URL)")
	f.StringVar(&w.secret, "secret", "", "secret that signs each body (X-Signature-256, and X-Signature with SHA-1 as Spacelift does); prefer --secret-file or GANTRY_SECRET")
	f.StringVar(&w.secretFile, "secret-file", "", "read the secret from this file")
	f.StringArrayVar(&w.headers, "header", nil, "header NAME=VALUE sent with every message (repeatable; values are write-only)")
	f.StringArrayVar(&w.labels, "label", nil, "label (repeatable)")
	f.IntVar(&w.retries, "retries", 5, "retries after the first attempt (0 to 20)")
	f.BoolVar(&w.enabled, "enabled", true, "send messages (--enabled=false keeps the endpoint but fails its messages)")
	exclusive(cmd, "secret", "secret-file")
	m := &w.email
	f.StringVar(&m.host, "smtp-host", "", "email: the SMTP server's host name or IP address")
	f.IntVar(&m.port, "smtp-port", 0, "email: the SMTP server's port (default 587, 465 with --tls tls)")
	f.StringVar(&m.username, "smtp-username", "", "email: the user to authenticate as (AUTH PLAIN, over TLS only)")
	// Only from a file (or GANTRY_SMTP_PASSWORD_FILE), never on the command line.
	f.StringVar(&m.passwordFile, "smtp-password-file", "", "email: read the SMTP password from this file (write-only, encrypted at rest)")
	f.StringVar(&m.tls, "tls", "", "email: starttls (default: STARTTLS required), tls (implicit TLS) or none (plain text, loopback hosts only)")
	f.StringVar(&m.caFile, "smtp-ca-file", "", "email: PEM certificates to trust for the SMTP server's certificate (a private CA, a self-signed server)")
	f.StringVar(&m.from, "from", "", "email: the sender, e.g. 'Gantry <gantry@example.com>'")
	f.StringArrayVar(&m.to, "to", nil, "email: a default recipient (repeatable), used when a rule gives no \"to\"")
}

// anyEmailFlag reports whether a flag only email endpoints take was given.
func anyEmailFlag(cmd *cobra.Command) (string, bool) {
	for _, n := range emailFlagNames {
		if cmd.Flags().Changed(n) {
			return n, true
		}
	}
	return "", false
}

// passwordValue returns the SMTP password of --smtp-password-file, and
// whether the flag was given.
func (m *emailFlags) passwordValue(cmd *cobra.Command) (*string, error) {
	if !cmd.Flags().Changed("smtp-password-file") {
		return nil, nil
	}
	b, err := os.ReadFile(m.passwordFile)
	if err != nil {
		return nil, fmt.Errorf("--smtp-password-file: %w", err)
	}
	s := strings.TrimRight(string(b), "\r\n")
	return &s, nil
}

// caValue returns the PEM certificates of --smtp-ca-file ("" for an empty
// flag), and whether the flag was given.
func (m *emailFlags) caValue(cmd *cobra.Command) (*string, error) {
	if !cmd.Flags().Changed("smtp-ca-file") {
		return nil, nil
	}
	s := ""
	if m.caFile != "" {
		b, err := os.ReadFile(m.caFile)
		if err != nil {
			return nil, fmt.Errorf("--smtp-ca-file: %w", err)
		}
		s = string(b)
	}
	return &s, nil
}

// create returns the SMTP settings of a new email endpoint.
func (m *emailFlags) create(cmd *cobra.Command) (*apiv1.WebhookEmailCreate, error) {
	if m.host == "" || m.from == "" {
		return nil, usageErrorf("an email endpoint needs --smtp-host and --from")
	}
	out := &apiv1.WebhookEmailCreate{SMTPHost: m.host, SMTPPort: m.port, SMTPUsername: m.username, TLS: m.tls, From: m.from,
		To: nonEmpty(m.to)}
	p, err := m.passwordValue(cmd)
	if err != nil {
		return nil, err
	}
	if p != nil {
		out.SMTPPassword = *p
	}
	ca, err := m.caValue(cmd)
	if err != nil {
		return nil, err
	}
	if ca != nil {
		out.CAPEM = *ca
	}
	return out, nil
}

// update returns the SMTP changes the flags give, nil for none.
func (m *emailFlags) update(cmd *cobra.Command) (*apiv1.WebhookEmailUpdate, error) {
	f := cmd.Flags()
	var u apiv1.WebhookEmailUpdate
	if f.Changed("smtp-host") {
		u.SMTPHost = &m.host
	}
	if f.Changed("smtp-port") {
		u.SMTPPort = &m.port
	}
	if f.Changed("smtp-username") {
		u.SMTPUsername = &m.username
	}
	if f.Changed("tls") {
		u.TLS = &m.tls
	}
	if f.Changed("from") {
		u.From = &m.from
	}
	if f.Changed("to") {
		to := nonEmpty(m.to)
		u.To = &to
	}
	var err error
	if u.SMTPPassword, err = m.passwordValue(cmd); err != nil {
		return nil, err
	}
	if u.CAPEM, err = m.caValue(cmd); err != nil {
		return nil, err
	}
	if u == (apiv1.WebhookEmailUpdate{}) {
		return nil, nil
	}
	return &u, nil
}

// secretValue returns the secret given, and whether one was.
func (w *webhookFlags) secretValue(cmd *cobra.Command) (*string, error) {
	f := cmd.Flags()
	switch {
	case f.Changed("secret-file"):
		b, err := os.ReadFile(w.secretFile)
		if err != nil {
			return nil, fmt.Errorf("--secret-file: %w", err)
		}
		s := strings.TrimRight(string(b), "\r\n")
		return &s, nil
	case f.Changed("secret"):
		return &w.secret, nil
	}
	return nil, nil
}

// headerMap parses NAME=VALUE flags; an empty flag value adds nothing.
func headerMap(items []string) (map[string]string, error) {
	out := map[string]string{}
	for _, it := range items {
		if it == "" {
			continue
		}
		k, v, ok := strings.Cut(it, "=")
		if !ok || strings.TrimSpace(k) == "" {
			return nil, usageErrorf("--header %q: want NAME=VALUE", it)
		}
		out[strings.TrimSpace(k)] = v
	}
	return out, nil
}

func webhookCreate() *cobra.Command {
	var in apiv1.WebhookCreate
	var w webhookFlags
	var slack, teams, email bool
	cmd := &cobra.Command{Use: "create", Short: "Create a notification endpoint", Args: cobra.NoArgs,
		Example: `  gantry webhook create --id ops --webhook-url https://alerts.example.com/gantry --secret-file secret.txt
  gantry webhook create --id ops-slack --slack --webhook-url https://hooks.slack.com/services/T/B/X
  gantry webhook create --id ops-teams --teams --webhook-url https://example.webhook.office.com/webhookb2/...
  gantry webhook create --id ops-mail --email --smtp-host smtp.example.com --smtp-username gantry \
    --smtp-password-file smtp-password.txt --from 'Gantry <gantry@example.com>' --to ops@example.com`}
	cmd.RunE = withCmdApp(func(ctx context.Context, a *app, c *client.Client) error {
		flag, emailFlag := anyEmailFlag(cmd)
		switch {
		case emailFlag && (slack || teams):
			return usageErrorf("--%s is for email endpoints, not --slack or --teams ones", flag)
		case emailFlag:
			email = true
		}
		if email {
			if w.url != "" {
				return usageErrorf("an email endpoint has no --webhook-url: give --smtp-host")
			}
			in.Kind = "email"
			var err error
			if in.Email, err = w.email.create(cmd); err != nil {
				return err
			}
		} else if w.url == "" {
			return usageErrorf("required flag \"webhook-url\" not set (or --email with --smtp-host for an email endpoint)")
		}
		h, err := headerMap(w.headers)
		if err != nil {
			return err
		}
		secret, err := w.secretValue(cmd)
		if err != nil {
			return err
		}
		if secret != nil {
			in.Secret = *secret
		}
		in.URL, in.Headers, in.Labels = w.url, h, nonEmpty(w.labels)
		in.Retries, in.Enabled = &w.retries, &w.enabled
		switch {
		case slack:
			in.Kind = "slack"
		case teams:
			in.Kind = "teams"
		}
		out, err := c.CreateWebhook(ctx, in)
		if err != nil {
			return err
		}
		return a.printWebhook(out)
	})
	f := cmd.Flags()
	f.StringVar(&in.ID, "id", "", "endpoint id (a slug); notification policies name it in endpoint_id or channel_id")
	f.StringVar(&in.Space, "space", "", "space of the endpoint (default root)")
	f.BoolVar(&slack, "slack", false, "a Slack incoming webhook: messages are {\"text\": ...} and the URL is kept secret")
	f.BoolVar(&teams, "teams", false, "a Microsoft Teams incoming webhook (or Workflows URL): messages are Adaptive Cards and the URL is kept secret")
	f.BoolVar(&email, "email", false, "an SMTP server (implied by the email flags below): give --smtp-host, --from and usually --to")
	w.register(cmd)
	exclusive(cmd, "slack", "teams", "email")
	required(cmd, "id")
	return cmd
}

func webhookList() *cobra.Command {
	var sp string
	cmd := &cobra.Command{Use: "list", Short: "List notification endpoints", Args: cobra.NoArgs}
	cmd.RunE = withCmdApp(func(ctx context.Context, a *app, c *client.Client) error {
		l, err := c.ListWebhooks(ctx, sp)
		if err != nil {
			return err
		}
		return a.print(orEmpty(l.Items), func(w io.Writer) {
			row(w, "ID", "KIND", "SPACE", "URL", "ENABLED", "RETRIES", "LABELS")
			for _, e := range l.Items {
				row(w, e.ID, e.Kind, e.Space, e.URL, e.Enabled, e.Retries, joinOrDash(e.Labels))
			}
		})
	})
	cmd.Flags().StringVar(&sp, "space", "", "only the endpoints of this space")
	return cmd
}

func webhookShow() *cobra.Command {
	var id string
	cmd := &cobra.Command{Use: "show", Short: "Show a notification endpoint", Args: cobra.NoArgs}
	cmd.RunE = withCmdApp(func(ctx context.Context, a *app, c *client.Client) error {
		e, err := c.GetWebhook(ctx, id)
		if err != nil {
			return err
		}
		return a.printWebhook(e)
	})
	cmd.Flags().StringVar(&id, "id", "", "endpoint id")
	required(cmd, "id")
	return cmd
}

func webhookUpdate() *cobra.Command {
	var id string
	var w webhookFlags
	cmd := &cobra.Command{Use: "update", Short: "Change a notification endpoint (only the flags given)", Args: cobra.NoArgs}
	cmd.RunE = withCmdApp(func(ctx context.Context, a *app, c *client.Client) error {
		f := cmd.Flags()
		var in apiv1.WebhookUpdate
		var err error
		if in.Secret, err = w.secretValue(cmd); err != nil {
			return err
		}
		if f.Changed("webhook-url") {
			in.URL = &w.url
		}
		if f.Changed("header") {
			h, err := headerMap(w.headers)
			if err != nil {
				return err
			}
			in.Headers = &h
		}
		if f.Changed("label") {
			l := nonEmpty(w.labels)
			in.Labels = &l
		}
		if f.Changed("retries") {
			in.Retries = &w.retries
		}
		if f.Changed("enabled") {
			in.Enabled = &w.enabled
		}
		if in.Email, err = w.email.update(cmd); err != nil {
			return err
		}
		if in == (apiv1.WebhookUpdate{}) {
			return usageErrorf("nothing to update: give at least one of --webhook-url, --secret, --secret-file, --header, --label, " +
				"--retries, --enabled or, for email endpoints, --smtp-host, --smtp-port, --smtp-username, --smtp-password-file, --tls, " +
				"--smtp-ca-file, --from, --to")
		}
		e, err := c.UpdateWebhook(ctx, id, in)
		if err != nil {
			return err
		}
		return a.printWebhook(e)
	})
	cmd.Flags().StringVar(&id, "id", "", "endpoint id")
	w.register(cmd)
	updateFlags(cmd, map[string]string{
		"header":             `header NAME=VALUE (repeatable; replaces all headers; --header "" removes them)`,
		"secret":             `new secret (--secret "" removes it); prefer --secret-file or GANTRY_SECRET`,
		"to":                 `email: a default recipient (repeatable; replaces them all; --to "" removes them)`,
		"smtp-ca-file":       `email: PEM certificates to trust for the SMTP server (--smtp-ca-file "" removes them)`,
		"smtp-password-file": `email: read the new SMTP password from this file (an empty file, with --smtp-username "", removes authentication)`,
		"smtp-port":          "email: the SMTP server's port",
		"tls":                "email: starttls (STARTTLS required), tls (implicit TLS) or none (plain text, loopback hosts only)",
	})
	required(cmd, "id")
	return cmd
}

func webhookDelete() *cobra.Command {
	var id string
	cmd := &cobra.Command{Use: "delete", Short: "Delete a notification endpoint", Args: cobra.NoArgs}
	cmd.RunE = withCmdApp(func(ctx context.Context, a *app, c *client.Client) error {
		if err := c.DeleteWebhook(ctx, id); err != nil {
			return err
		}
		return a.deleted("webhook", id)
	})
	cmd.Flags().StringVar(&id, "id", "", "endpoint id")
	required(cmd, "id")
	return cmd
}

func (a *app) printWebhook(e apiv1.Webhook) error {
	return a.print(e, func(w io.Writer) {
		field(w, "ID", e.ID)
		field(w, "Kind", e.Kind)
		field(w, "Space", e.Space)
		field(w, "URL", e.URL)
		if e.Email == nil {
			field(w, "Secret", map[bool]string{true: "set (write-only)", false: "none"}[e.HasSecret])
			names := make([]string, 0, len(e.Headers))
			for k := range e.Headers {
				names = append(names, k+"="+e.Headers[k])
			}
			sort.Strings(names)
			field(w, "Headers", joinOrDash(names))
		}
		field(w, "Labels", joinOrDash(e.Labels))
		if m := e.Email; m != nil {
			field(w, "SMTP host", m.SMTPHost)
			field(w, "SMTP port", m.SMTPPort)
			field(w, "TLS", m.TLS)
			field(w, "SMTP username", orDash(m.SMTPUsername))
			field(w, "SMTP password", map[bool]string{true: "set (write-only)", false: "none"}[m.HasSMTPPassword])
			field(w, "SMTP CA", map[bool]string{true: "set", false: "system roots"}[m.HasCAPEM])
			field(w, "From", m.From)
			field(w, "To", joinOrDash(m.To))
		}
		field(w, "Retries", e.Retries)
		field(w, "Enabled", e.Enabled)
		field(w, "Created", fmtTime(e.CreatedAt))
		field(w, "Updated", fmtTime(e.UpdatedAt))
	})
}

func notificationCommand() *cobra.Command {
	return group("notification", "Read the inbox and the deliveries of notification policies",
		notificationList(), notificationRead(), notificationDeliveries())
}

func notificationList() *cobra.Command {
	var opts client.NotificationListOptions
	var limit int
	cmd := &cobra.Command{Use: "list", Short: "List inbox notifications, newest first", Args: cobra.NoArgs}
	cmd.RunE = withCmdApp(func(ctx context.Context, a *app, c *client.Client) error {
		items, err := collect(limit, func(o client.ListOptions) (apiv1.List[apiv1.Notification], error) {
			opts.ListOptions = o
			return c.ListNotifications(ctx, opts)
		})
		if err != nil {
			return err
		}
		return a.print(items, func(w io.Writer) {
			row(w, "ID", "SEVERITY", "SPACE", "RUN", "TITLE", "READ", "CREATED")
			for _, n := range items {
				row(w, n.ID, n.Severity, n.Space, orDash(n.Run), oneLine(n.Title, 60), n.Read, fmtTime(n.CreatedAt))
			}
		})
	})
	f := cmd.Flags()
	f.StringVar(&opts.Space, "space", "", "only the notifications of runs in this space")
	f.StringVar(&opts.Run, "run", "", "only the notifications of this run")
	f.IntVar(&limit, "limit", 100, "list at most this many (0: all)")
	return cmd
}

func notificationRead() *cobra.Command {
	var id string
	cmd := &cobra.Command{Use: "read", Short: "Mark an inbox notification read", Args: cobra.NoArgs}
	cmd.RunE = withCmdApp(func(ctx context.Context, a *app, c *client.Client) error {
		n, err := c.MarkNotificationRead(ctx, id)
		if err != nil {
			return err
		}
		return a.print(n, func(w io.Writer) {
			field(w, "ID", n.ID)
			field(w, "Severity", n.Severity)
			field(w, "Run", n.Run)
			field(w, "Title", n.Title)
			field(w, "Body", n.Body)
			field(w, "Read", n.Read)
		})
	})
	cmd.Flags().StringVar(&id, "id", "", "notification id")
	required(cmd, "id")
	return cmd
}

func notificationDeliveries() *cobra.Command {
	var opts client.DeliveryListOptions
	var limit int
	cmd := &cobra.Command{Use: "deliveries", Short: "List webhook, Slack, Teams and email deliveries with their attempts, newest first", Args: cobra.NoArgs}
	cmd.RunE = withCmdApp(func(ctx context.Context, a *app, c *client.Client) error {
		items, err := collect(limit, func(o client.ListOptions) (apiv1.List[apiv1.Delivery], error) {
			opts.ListOptions = o
			return c.ListDeliveries(ctx, opts)
		})
		if err != nil {
			return err
		}
		return a.print(items, func(w io.Writer) {
			row(w, "ID", "STATUS", "ENDPOINT", "RUN", "EVENT", "ATTEMPTS", "LAST HTTP", "ERROR")
			for _, d := range items {
				last := "-"
				if n := len(d.Attempts); n > 0 && d.Attempts[n-1].HTTPStatus != 0 {
					last = fmt.Sprint(d.Attempts[n-1].HTTPStatus)
				}
				row(w, d.ID, d.Status, d.Endpoint, orDash(d.Run), orDash(d.Event), len(d.Attempts), last, orDash(oneLine(d.Error, 80)))
			}
		})
	})
	f := cmd.Flags()
	f.StringVar(&opts.Run, "run", "", "only the deliveries of this run")
	f.StringVar(&opts.Endpoint, "endpoint", "", "only the deliveries to this endpoint")
	f.StringVar(&opts.Status, "status", "", "only deliveries in this status: PENDING, SENDING, DELIVERED or FAILED")
	f.IntVar(&limit, "limit", 100, "list at most this many (0: all)")
	return cmd
}

// oneLine makes s one line of at most n runes for a table cell.
func oneLine(s string, n int) string {
	s = strings.Join(strings.Fields(s), " ")
	if r := []rune(s); len(r) > n {
		return string(r[:n-3]) + "..."
	}
	return s
}
