package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/gantry-iac/gantry/internal/apiv1"
	"github.com/gantry-iac/gantry/internal/client"
)

func (a *app) auditCommand() *cobra.Command {
	return group("audit", "Read, export and verify the tamper-evident audit trail",
		a.auditList(), a.auditExport(), a.auditVerify(),
		a.auditWebhook(), a.auditDeliveries())
}

// auditFlags are the filters of list and export.
type auditFlags struct {
	actor, action, subject, subjectType, space, since, until string
}

func (f *auditFlags) register(cmd *cobra.Command) {
	fs := cmd.Flags()
	fs.StringVar(&f.actor, "actor", "", "only events of this actor, e.g. api_key::ci, run::run-01J..., unknown")
	fs.StringVar(&f.action, "action", "", `only events of this action, e.g. stack.create, or a prefix ending in "*" such as "stack.*"`)
	fs.StringVar(&f.subject, "subject", "", "only events about the subject with this id")
	fs.StringVar(&f.subjectType, "subject-type", "", "only events about subjects of this type, e.g. stack")
	fs.StringVar(&f.space, "space", "", "only events in this space")
	fs.StringVar(&f.since, "since", "", `only events at or after this time: an RFC 3339 time, or an age such as "24h" or "7d"`)
	fs.StringVar(&f.until, "until", "", "only events before this time (same forms as --since)")
}

func (f *auditFlags) filter(now time.Time) (client.AuditFilter, error) {
	out := client.AuditFilter{Actor: f.actor, Action: f.action, SubjectID: f.subject, SubjectType: f.subjectType, Space: f.space}
	var err error
	if out.Since, err = parseWhen("since", f.since, now); err != nil {
		return out, err
	}
	if out.Until, err = parseWhen("until", f.until, now); err != nil {
		return out, err
	}
	return out, nil
}

// parseWhen reads an RFC 3339 time or an age ("90m", "24h", "7d") before now.
func parseWhen(flag, v string, now time.Time) (time.Time, error) {
	if v == "" {
		return time.Time{}, nil
	}
	if t, err := time.Parse(time.RFC3339Nano, v); err == nil {
		return t, nil
	}
	if days, ok := strings.CutSuffix(v, "d"); ok {
		if n, err := strconv.Atoi(days); err == nil && n >= 0 {
			return now.AddDate(0, 0, -n), nil
		}
	}
	if d, err := time.ParseDuration(v); err == nil && d >= 0 {
		return now.Add(-d), nil
	}
	return time.Time{}, usageErrorf("--%s %q: want an RFC 3339 time such as 2026-01-31T00:00:00Z or an age such as 24h or 7d", flag, v)
}

func (a *app) auditList() *cobra.Command {
	var f auditFlags
	var limit int
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List audit events, newest first",
		Args:  cobra.NoArgs,
	}
	cmd.RunE = a.withClient(func(ctx context.Context, c *client.Client, _ []string) error {
		if limit < 1 {
			return usageErrorf("--limit must be at least 1")
		}
		filter, err := f.filter(time.Now())
		if err != nil {
			return err
		}
		events := []apiv1.AuditEvent{}
		cursor := ""
		for len(events) < limit {
			page, err := c.ListAuditEvents(ctx, filter, client.ListOptions{Limit: min(limit-len(events), 1000), Cursor: cursor})
			if err != nil {
				return err
			}
			events = append(events, page.Items...)
			if cursor = page.NextCursor; cursor == "" {
				break
			}
		}
		return a.print(events, func(w io.Writer) {
			row(w, "SEQ", "AT", "ACTOR", "ACTION", "SUBJECT", "SPACE", "OUTCOME", "SOURCE IP")
			for _, ev := range events {
				subject := ev.SubjectType
				if ev.SubjectID != "" {
					subject += "/" + ev.SubjectID
				}
				row(w, ev.Seq, ev.At.UTC().Format(time.RFC3339), ev.Actor, ev.Action, orDash(subject),
					orDash(ev.Space), ev.Outcome, orDash(ev.SourceIP))
			}
		})
	})
	f.register(cmd)
	cmd.Flags().IntVar(&limit, "limit", 50, "how many events to show at most")
	return cmd
}

func (a *app) auditExport() *cobra.Command {
	var f auditFlags
	var format, out string
	cmd := &cobra.Command{
		Use:   "export",
		Short: "Export every matching audit event, oldest first, as JSON lines or CSV",
		Long: `Export every matching audit event, oldest first, as JSON lines (one
event per line, the fields of the API) or CSV (with a header row), to
standard output or to the file --out names. The global -o (table or json)
does not apply.`,
		Args: cobra.NoArgs,
	}
	cmd.RunE = a.withClient(func(ctx context.Context, c *client.Client, _ []string) error {
		if format != "jsonl" && format != "csv" {
			return usageErrorf("--format %q: want jsonl or csv", format)
		}
		filter, err := f.filter(time.Now())
		if err != nil {
			return err
		}
		if out == "" || out == "-" {
			return c.ExportAuditEvents(ctx, filter, format, a.stdout)
		}
		// Write beside the target and rename, so that a failed export
		// leaves no partial file under the name asked for.
		tmp := out + ".partial"
		file, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
		if err != nil {
			return err
		}
		err = c.ExportAuditEvents(ctx, filter, format, file)
		err = errors.Join(err, file.Close())
		if err == nil {
			err = os.Rename(tmp, out)
		}
		if err != nil {
			os.Remove(tmp)
			return err
		}
		fmt.Fprintf(a.stderr, "Exported the audit events to %s.\n", out)
		return nil
	})
	f.register(cmd)
	cmd.Flags().StringVar(&format, "format", "jsonl", "jsonl or csv")
	cmd.Flags().StringVar(&out, "out", "", "file to write (default: standard output)")
	return cmd
}

// errBroken is the error of verify when the chain is broken.
type errBroken struct{ v apiv1.AuditVerification }

func (e errBroken) Error() string {
	return fmt.Sprintf("the audit trail is broken at event %d: %s", e.v.BrokenAt, e.v.Reason)
}

func (a *app) auditVerify() *cobra.Command {
	return &cobra.Command{
		Use:   "verify",
		Short: "Recompute the audit hash chain; exit 1 naming the first broken link",
		Args:  cobra.NoArgs,
		RunE: a.withClient(func(ctx context.Context, c *client.Client, _ []string) error {
			v, err := c.VerifyAudit(ctx)
			if err != nil {
				return err
			}
			if err := a.print(v, func(w io.Writer) {
				if v.OK {
					fmt.Fprintf(w, "The audit trail is intact: %d events checked.\n", v.Checked)
				} else {
					fmt.Fprintf(w, "The audit trail is BROKEN: %d events checked before the first broken link.\n", v.Checked)
					field(w, "Broken at", v.BrokenAt)
					field(w, "Reason", v.Reason)
				}
				field(w, "Head", v.HeadSeq)
				field(w, "Head hash", v.HeadHash)
			}); err != nil {
				return err
			}
			if !v.OK {
				return errBroken{v}
			}
			return nil
		}),
	}
}
