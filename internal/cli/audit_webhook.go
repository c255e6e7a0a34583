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

// auditWebhook is `gantry audit webhook`: the audit forwarding endpoints.
func (a *app) auditWebhook() *cobra.Command {
	return group("webhook", "Manage audit webhooks: endpoints that receive every audit event, signed, in order",
		a.auditWebhookCreate(), a.auditWebhookList(), a.auditWebhookDelete())
}

func (a *app) auditWebhookCreate() *cobra.Command {
	var in apiv1.AuditWebhookCreate
	var secretFile string
	var headers []string
	cmd := &cobra.Command{
		Use:   "create",
		Short: "Create an audit webhook (it gets the events recorded from now on, or from --from-seq)",
		Args:  cobra.NoArgs,
	}
	cmd.RunE = a.withClient(func(ctx context.Context, c *client.Client, _ []string) error {
		h, err := headerMap(headers)
		if err != nil {
			return err
		}
		in.Headers = h
		if secretFile != "" {
			b, err := os.ReadFile(secretFile)
			if err != nil {
				return fmt.Errorf("--secret-file: %w", err)
			}
			in.Secret = strings.TrimRight(string(b), "\r\n")
		}
		if in.FromSeq < 0 {
			return usageErrorf("--from-seq must be 1 or more")
		}
		out, err := c.CreateAuditWebhook(ctx, in)
		if err != nil {
			return err
		}
		return a.print(out, func(w io.Writer) {
			printAuditWebhook(w, out)
			if in.FromSeq == 0 {
				fmt.Fprintf(w, "It starts after event %d, the current head: only events recorded from now on are sent (--from-seq N replays from event N).\n", out.DeliveredSeq)
			} else {
				fmt.Fprintf(w, "It starts at event %d.\n", out.DeliveredSeq+1)
			}
		})
	})
	f := cmd.Flags()
	f.StringVar(&in.ID, "id", "", "audit webhook id (a slug)")
	f.StringVar(&in.URL, "webhook-url", "", "where events go: an http(s) URL")
	f.StringVar(&secretFile, "secret-file", "", "read the secret that signs each body (X-Signature-256) from this file")
	f.StringArrayVar(&headers, "header", nil, "header NAME=VALUE sent with every request (repeatable; values are write-only)")
	f.Int64Var(&in.FromSeq, "from-seq", 0, "first event to send, replaying the trail from there (default: only new events)")
	required(cmd, "id", "webhook-url")
	return cmd
}

func printAuditWebhook(w io.Writer, e apiv1.AuditWebhook) {
	field(w, "ID", e.ID)
	field(w, "URL", e.URL)
	field(w, "Secret", map[bool]string{true: "set (write-only)", false: "none (bodies are not signed)"}[e.HasSecret])
	names := make([]string, 0, len(e.Headers))
	for k, v := range e.Headers {
		names = append(names, k+"="+v)
	}
	sort.Strings(names)
	field(w, "Headers", joinOrDash(names))
	field(w, "Delivered up to", e.DeliveredSeq)
	field(w, "Created", fmtTime(e.CreatedAt))
}

func (a *app) auditWebhookList() *cobra.Command {
	return &cobra.Command{
		Use:   "list",
		Short: "List audit webhooks",
		Args:  cobra.NoArgs,
		RunE: a.withClient(func(ctx context.Context, c *client.Client, _ []string) error {
			l, err := c.ListAuditWebhooks(ctx)
			if err != nil {
				return err
			}
			return a.print(orEmpty(l.Items), func(w io.Writer) {
				row(w, "ID", "URL", "SIGNED", "DELIVERED", "CREATED")
				for _, e := range l.Items {
					row(w, e.ID, e.URL, e.HasSecret, e.DeliveredSeq, fmtTime(e.CreatedAt))
				}
			})
		}),
	}
}

func (a *app) auditWebhookDelete() *cobra.Command {
	var id string
	cmd := &cobra.Command{Use: "delete", Short: "Delete an audit webhook", Args: cobra.NoArgs}
	cmd.RunE = a.withClient(func(ctx context.Context, c *client.Client, _ []string) error {
		if err := c.DeleteAuditWebhook(ctx, id); err != nil {
			return err
		}
		return a.print(map[string]string{"deleted": id}, func(w io.Writer) {
			fmt.Fprintf(w, "Audit webhook %s deleted.\n", id)
		})
	})
	cmd.Flags().StringVar(&id, "id", "", "audit webhook id")
	required(cmd, "id")
	return cmd
}

func (a *app) auditDeliveries() *cobra.Command {
	return &cobra.Command{
		Use:   "deliveries",
		Short: "Show how forwarding to each audit webhook is going (cursor, lag, failures, flag)",
		Args:  cobra.NoArgs,
		RunE: a.withClient(func(ctx context.Context, c *client.Client, _ []string) error {
			l, err := c.AuditDeliveries(ctx)
			if err != nil {
				return err
			}
			return a.print(orEmpty(l.Items), func(w io.Writer) {
				row(w, "WEBHOOK", "DELIVERED", "HEAD", "LAG", "ATTEMPTS", "FAILING SINCE", "FLAGGED", "LAST ERROR")
				for _, d := range l.Items {
					since, errText := "-", "-"
					if d.FailingSince != nil {
						since = fmtTime(*d.FailingSince)
					}
					if d.LastError != "" {
						errText = d.LastError
					}
					row(w, d.Webhook, d.DeliveredSeq, d.HeadSeq, d.Lag, d.Attempts, since, d.Flagged, errText)
				}
			})
		}),
	}
}
