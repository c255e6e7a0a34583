package api

import (
	"net/http"
	"time"

	"github.com/gantry-iac/gantry/internal/apiv1"
	"github.com/gantry-iac/gantry/internal/audit"
	"github.com/gantry-iac/gantry/internal/auth"
	"github.com/gantry-iac/gantry/internal/errs"
	"github.com/gantry-iac/gantry/internal/httpx"
	"github.com/gantry-iac/gantry/internal/space"
)

// The forwarding routes' audit actions join the table of audit.go here.
func init() {
	auditActions["POST /api/v1/audit/webhooks"] = routeAudit{"audit_webhook.create", "audit_webhook", fromResponse}
	auditActions["DELETE /api/v1/audit/webhooks/{id}"] = routeAudit{"audit_webhook.delete", "audit_webhook", "id"}
}

// auditWebhookRoutes registers audit forwarding: its endpoints and their
// delivery status.
func (a *API) auditWebhookRoutes(user func(pattern, action string, h handler)) {
	r := routeFunc(user)
	r.Handle("GET /api/v1/audit/webhooks", auth.AuditRead, a.listAuditWebhooks)
	r.Handle("POST /api/v1/audit/webhooks", auth.AuditManage, a.createAuditWebhook)
	r.Handle("DELETE /api/v1/audit/webhooks/{id}", auth.AuditManage, a.deleteAuditWebhook)
	r.Handle("GET /api/v1/audit/deliveries", auth.AuditRead, a.listAuditDeliveries)
}

// auditForwarder returns the forwarder once p may do action (audit:read
// or audit:manage, in the root space).
func (a *API) auditForwarder(p auth.Principal, action string) (*audit.Forwarder, error) {
	if a.Audit == nil || a.Audit.Forwarder() == nil {
		return nil, errs.E(errs.Unavailable, "audit forwarding is not enabled on this server")
	}
	if err := auth.Authorize(p, action, space.Root); err != nil {
		return nil, err
	}
	return a.Audit.Forwarder(), nil
}

func auditWebhookOut(e audit.ForwardEndpoint) apiv1.AuditWebhook {
	h := e.Headers
	if h == nil {
		h = map[string]string{}
	}
	return apiv1.AuditWebhook{ID: e.ID, URL: e.URL, HasSecret: e.HasSecret, Headers: h, Enabled: e.Enabled,
		DeliveredSeq: e.DeliveredSeq, CreatedAt: e.CreatedAt.UTC()}
}

func (a *API) listAuditWebhooks(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
	f, err := a.auditForwarder(p, auth.AuditRead)
	if err != nil {
		return err
	}
	list, err := f.ListEndpoints(r.Context())
	if err != nil {
		return err
	}
	out := apiv1.List[apiv1.AuditWebhook]{Items: []apiv1.AuditWebhook{}}
	for _, e := range list {
		out.Items = append(out.Items, auditWebhookOut(e))
	}
	httpx.WriteJSON(w, http.StatusOK, out)
	return nil
}

func (a *API) createAuditWebhook(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
	f, err := a.auditForwarder(p, auth.AuditManage)
	if err != nil {
		return err
	}
	var in apiv1.AuditWebhookCreate
	if err := httpx.DecodeJSON(w, r, &in, MaxBody); err != nil {
		return err
	}
	if in.ID == "" || in.URL == "" {
		return errs.E(errs.Invalid, "id and url are required")
	}
	e, err := f.CreateEndpoint(r.Context(), audit.ForwardEndpoint{ID: in.ID, URL: in.URL, Secret: in.Secret,
		Headers: in.Headers}, in.FromSeq)
	if err != nil {
		return err
	}
	httpx.WriteJSON(w, http.StatusCreated, auditWebhookOut(e))
	return nil
}

func (a *API) deleteAuditWebhook(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
	f, err := a.auditForwarder(p, auth.AuditManage)
	if err != nil {
		return err
	}
	if err := f.DeleteEndpoint(r.Context(), r.PathValue("id")); err != nil {
		return err
	}
	return noContent(w)
}

func (a *API) listAuditDeliveries(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
	f, err := a.auditForwarder(p, auth.AuditRead)
	if err != nil {
		return err
	}
	list, err := f.Deliveries(r.Context())
	if err != nil {
		return err
	}
	out := apiv1.List[apiv1.AuditDelivery]{Items: []apiv1.AuditDelivery{}}
	for _, st := range list {
		out.Items = append(out.Items, apiv1.AuditDelivery{Webhook: st.Endpoint, URL: st.URL, Enabled: st.Enabled,
			DeliveredSeq: st.DeliveredSeq, HeadSeq: st.HeadSeq, Lag: st.Lag, LastDeliveredAt: auditTime(st.LastDeliveredAt),
			Attempts: st.Attempts, LastError: st.LastError, FailingSince: auditTime(st.FailingSince), Flagged: st.Flagged,
			NextAttemptAt: auditTime(st.NextAttemptAt)})
	}
	httpx.WriteJSON(w, http.StatusOK, out)
	return nil
}

// auditTime returns t in UTC, or nil for the zero time.
func auditTime(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	u := t.UTC()
	return &u
}
