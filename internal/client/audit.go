package client

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"time"

	"github.com/gantry-iac/gantry/internal/apiv1"
)

// AuditFilter selects audit events; empty fields match everything.
type AuditFilter struct {
	Actor       string
	Action      string // exact, or a prefix ending in "*" ("stack.*")
	SubjectType string
	SubjectID   string
	Space       string
	Since       time.Time
	Until       time.Time
}

func (f AuditFilter) values() url.Values {
	q := url.Values{}
	setIf(q, "actor", f.Actor)
	setIf(q, "action", f.Action)
	setIf(q, "subject_type", f.SubjectType)
	setIf(q, "subject_id", f.SubjectID)
	setIf(q, "space", f.Space)
	if !f.Since.IsZero() {
		q.Set("since", f.Since.UTC().Format(time.RFC3339Nano))
	}
	if !f.Until.IsZero() {
		q.Set("until", f.Until.UTC().Format(time.RFC3339Nano))
	}
	return q
}

// ListAuditEvents returns a page of audit events, newest first.
func (c *Client) ListAuditEvents(ctx context.Context, f AuditFilter, opts ListOptions) (apiv1.List[apiv1.AuditEvent], error) {
	q := f.values()
	for k, v := range opts.values() {
		q[k] = v
	}
	var out apiv1.List[apiv1.AuditEvent]
	err := c.do(ctx, http.MethodGet, "/audit/events", q, nil, &out)
	return out, err
}

// ExportAuditEvents streams every matching event, oldest first, to w in
// format "jsonl" or "csv".
func (c *Client) ExportAuditEvents(ctx context.Context, f AuditFilter, format string, w io.Writer) error {
	q := f.values()
	q.Set("format", format)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.base+"/api/v1/audit/export?"+q.Encode(), nil)
	if err != nil {
		return err
	}
	req.Header.Set("User-Agent", c.userAgent)
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return decodeError(resp)
	}
	if _, err := io.Copy(w, resp.Body); err != nil {
		return fmt.Errorf("audit export interrupted: %w", err)
	}
	return nil
}

// VerifyAudit recomputes the audit chain on the server.
func (c *Client) VerifyAudit(ctx context.Context) (apiv1.AuditVerification, error) {
	var out apiv1.AuditVerification
	err := c.do(ctx, http.MethodPost, "/audit/verify", nil, nil, &out)
	return out, err
}
