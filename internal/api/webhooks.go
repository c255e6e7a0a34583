package api

import (
	"context"
	"net/http"
	"strings"

	"github.com/gantry-iac/gantry/internal/apiv1"
	"github.com/gantry-iac/gantry/internal/auth"
	"github.com/gantry-iac/gantry/internal/errs"
	"github.com/gantry-iac/gantry/internal/httpx"
	"github.com/gantry-iac/gantry/internal/notify"
	"github.com/gantry-iac/gantry/internal/space"
)

// routeFunc registers a route through Routes' user registrar. Its Handle
// method keeps the registrations in the mux.Handle(pattern, handler) form
// that the OpenAPI route test reads.
type routeFunc func(pattern, action string, h handler)

// Handle registers h for pattern.
func (r routeFunc) Handle(pattern, action string, h handler) { r(pattern, action, h) }

// notifyRoutes registers the notification endpoints, inbox and deliveries.
func (a *API) notifyRoutes(user func(pattern, action string, h handler)) {
	r := routeFunc(user)
	r.Handle("GET /api/v1/webhooks", auth.SpaceRead, a.listWebhooks)
	r.Handle("POST /api/v1/webhooks", auth.IntegrationCreate, a.createWebhook)
	r.Handle("GET /api/v1/webhooks/{id}", auth.SpaceRead, a.getWebhook)
	r.Handle("PATCH /api/v1/webhooks/{id}", auth.IntegrationUpdate, a.updateWebhook)
	r.Handle("DELETE /api/v1/webhooks/{id}", auth.IntegrationDelete, a.deleteWebhook)
	r.Handle("GET /api/v1/notifications", auth.SpaceRead, a.listNotifications)
	r.Handle("POST /api/v1/notifications/{id}/read", auth.SpaceRead, a.readNotification)
	r.Handle("GET /api/v1/deliveries", auth.SpaceRead, a.listDeliveries)
}

// notifier returns the notification service, or an error if the server
// runs without one.
func (a *API) notifier() (*notify.Service, error) {
	if a.Notify == nil {
		return nil, errs.E(errs.Unavailable, "notifications are not enabled on this server")
	}
	return a.Notify, nil
}

func webhookOut(e notify.Endpoint) apiv1.Webhook {
	// The service masks the URL of slack and teams endpoints and the
	// header values, and never returns the SMTP password.
	out := apiv1.Webhook{ID: e.ID, Space: e.SpaceID, Kind: e.Kind, URL: e.URL, HasSecret: e.HasSecret, Headers: e.Headers,
		Labels: e.Labels, Retries: e.Retries, Enabled: e.Enabled, CreatedAt: utc(e.CreatedAt), UpdatedAt: utc(e.UpdatedAt)}
	if e.Kind == notify.KindEmail {
		m := e.Email
		to := m.To
		if to == nil {
			to = []string{}
		}
		out.Email = &apiv1.WebhookEmail{SMTPHost: m.Host, SMTPPort: m.Port, SMTPUsername: m.Username, HasSMTPPassword: m.HasPassword,
			TLS: m.TLS, HasCAPEM: m.CAPEM != "", From: m.From, To: to}
	}
	return out
}

// emailSettings maps the SMTP configuration of a create body.
func emailSettings(in *apiv1.WebhookEmailCreate) notify.EmailSettings {
	if in == nil {
		return notify.EmailSettings{}
	}
	return notify.EmailSettings{Host: in.SMTPHost, Port: in.SMTPPort, Username: in.SMTPUsername, Password: in.SMTPPassword,
		TLS: in.TLS, CAPEM: in.CAPEM, From: in.From, To: in.To}
}

// emailUpdate maps the SMTP changes of an update body.
func emailUpdate(in *apiv1.WebhookEmailUpdate) notify.EmailUpdate {
	if in == nil {
		return notify.EmailUpdate{}
	}
	return notify.EmailUpdate{Host: in.SMTPHost, Port: in.SMTPPort, Username: in.SMTPUsername, Password: in.SMTPPassword,
		TLS: in.TLS, CAPEM: in.CAPEM, From: in.From, To: in.To}
}

// webhook loads the endpoint of the path and checks p may do action in its space.
func (a *API) webhook(r *http.Request, p auth.Principal, action string) (*notify.Service, notify.Endpoint, error) {
	n, err := a.notifier()
	if err != nil {
		return nil, notify.Endpoint{}, err
	}
	e, err := n.GetEndpoint(r.Context(), r.PathValue("id"))
	if err != nil {
		return nil, e, err
	}
	return n, e, auth.Authorize(p, action, e.SpaceID)
}

func (a *API) listWebhooks(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
	n, err := a.notifier()
	if err != nil {
		return err
	}
	sp := r.URL.Query().Get("space")
	if err := listScope(p, sp); err != nil {
		return err
	}
	list, err := n.ListEndpoints(r.Context(), sp)
	if err != nil {
		return err
	}
	out := apiv1.List[apiv1.Webhook]{Items: []apiv1.Webhook{}}
	for _, e := range list {
		if !readable(p, e.SpaceID) {
			continue
		}
		out.Items = append(out.Items, webhookOut(e))
	}
	httpx.WriteJSON(w, http.StatusOK, out)
	return nil
}

func orRoot(spaceID string) string {
	if spaceID == "" {
		return space.Root
	}
	return spaceID
}

func (a *API) createWebhook(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
	n, err := a.notifier()
	if err != nil {
		return err
	}
	var in apiv1.WebhookCreate
	if err := httpx.DecodeJSON(w, r, &in, MaxBody); err != nil {
		return err
	}
	switch {
	case in.ID == "":
		return errs.E(errs.Invalid, "id is required")
	case in.Kind == notify.KindEmail && in.Email == nil:
		return errs.E(errs.Invalid, "email (the SMTP settings) is required for kind email")
	case in.Kind != notify.KindEmail && in.URL == "":
		return errs.E(errs.Invalid, "url is required")
	}
	e := notify.Endpoint{ID: in.ID, SpaceID: orRoot(in.Space), Kind: in.Kind, URL: in.URL, Secret: in.Secret,
		Headers: in.Headers, Labels: in.Labels, Retries: notify.DefaultRetries, Enabled: true, Email: emailSettings(in.Email)}
	set(&e.Retries, in.Retries)
	set(&e.Enabled, in.Enabled)
	if err := auth.Authorize(p, auth.IntegrationCreate, e.SpaceID); err != nil {
		return err
	}
	if e, err = n.CreateEndpoint(r.Context(), e); err != nil {
		return err
	}
	httpx.WriteJSON(w, http.StatusCreated, webhookOut(e))
	return nil
}

func (a *API) getWebhook(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
	_, e, err := a.webhook(r, p, auth.SpaceRead)
	if err != nil {
		return err
	}
	httpx.WriteJSON(w, http.StatusOK, webhookOut(e))
	return nil
}

func (a *API) updateWebhook(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
	n, e, err := a.webhook(r, p, auth.IntegrationUpdate)
	if err != nil {
		return err
	}
	var in apiv1.WebhookUpdate
	if err := httpx.DecodeJSON(w, r, &in, MaxBody); err != nil {
		return err
	}
	e, err = n.UpdateEndpoint(r.Context(), e.ID, notify.EndpointUpdate{URL: in.URL, Secret: in.Secret, Headers: in.Headers,
		Labels: in.Labels, Retries: in.Retries, Enabled: in.Enabled, Email: emailUpdate(in.Email)})
	if err != nil {
		return err
	}
	httpx.WriteJSON(w, http.StatusOK, webhookOut(e))
	return nil
}

func (a *API) deleteWebhook(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
	n, e, err := a.webhook(r, p, auth.IntegrationDelete)
	if err != nil {
		return err
	}
	if err := n.DeleteEndpoint(r.Context(), e.ID); err != nil {
		return err
	}
	return noContent(w)
}

func notificationOut(it notify.InboxItem) apiv1.Notification {
	return apiv1.Notification{ID: it.ID, Space: it.SpaceID, Run: it.RunID, Stack: it.StackID, Event: it.Event,
		Title: it.Title, Body: it.Body, Severity: it.Severity, Read: it.Read, CreatedAt: utc(it.CreatedAt)}
}

func (a *API) listNotifications(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
	n, err := a.notifier()
	if err != nil {
		return err
	}
	limit, cursor, err := page(r)
	if err != nil {
		return err
	}
	q := r.URL.Query()
	f := notify.InboxFilter{RunID: q.Get("run"), Limit: limit, Cursor: cursor}
	if sp := q.Get("space"); sp != "" {
		f.SpaceIDs = []string{sp}
	}
	if err := listScope(p, q.Get("space")); err != nil {
		return err
	}
	items, next, err := fillPage(limit, cursor, func(cursor string, limit int) ([]notify.InboxItem, string, error) {
		f.Cursor, f.Limit = cursor, limit
		return n.ListInbox(r.Context(), f)
	}, func(it notify.InboxItem) bool { return readable(p, it.SpaceID) }, func(it notify.InboxItem) string { return it.ID })
	if err != nil {
		return err
	}
	out := apiv1.List[apiv1.Notification]{Items: []apiv1.Notification{}, NextCursor: nextCursor(r, next)}
	for _, it := range items {
		out.Items = append(out.Items, notificationOut(it))
	}
	httpx.WriteJSON(w, http.StatusOK, out)
	return nil
}

func (a *API) readNotification(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
	n, err := a.notifier()
	if err != nil {
		return err
	}
	it, err := n.GetInbox(r.Context(), r.PathValue("id"))
	if err != nil {
		return err
	}
	if err := auth.Authorize(p, auth.SpaceRead, it.SpaceID); err != nil {
		return err
	}
	if err := n.MarkRead(r.Context(), it.ID); err != nil {
		return err
	}
	it.Read = true
	httpx.WriteJSON(w, http.StatusOK, notificationOut(it))
	return nil
}

func deliveryOut(d notify.Delivery) apiv1.Delivery {
	out := apiv1.Delivery{ID: d.ID, Kind: d.Kind, Endpoint: d.EndpointID, Space: d.SpaceID, Run: d.RunID, Stack: d.StackID,
		Event: d.Event, Method: d.Method, Body: d.Body, Status: d.Status, Error: d.Error, Attempts: []apiv1.DeliveryAttempt{},
		CreatedAt: utc(d.CreatedAt), UpdatedAt: utc(d.UpdatedAt)}
	if !d.NextAttempt.IsZero() {
		t := utc(d.NextAttempt)
		out.NextAttemptAt = &t
	}
	for _, at := range d.Attempts {
		out.Attempts = append(out.Attempts, apiv1.DeliveryAttempt{N: at.N, At: utc(at.At), HTTPStatus: at.HTTPStatus,
			Error: at.Error, DurationMS: at.Duration.Milliseconds()})
	}
	return out
}

func (a *API) listDeliveries(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
	n, err := a.notifier()
	if err != nil {
		return err
	}
	limit, cursor, err := page(r)
	if err != nil {
		return err
	}
	q := r.URL.Query()
	if err := listScope(p, q.Get("space")); err != nil {
		return err
	}
	f := notify.DeliveryFilter{RunID: q.Get("run"), EndpointID: q.Get("endpoint"), SpaceID: q.Get("space"),
		Status: strings.ToUpper(q.Get("status")), Limit: limit, Cursor: cursor}
	// In the space of the run that sent it, not the current space of the
	// endpoint it names (an endpoint id can be reused after a delete by an
	// endpoint in another space).
	list, next, err := fillPage(limit, cursor, func(cursor string, limit int) ([]notify.Delivery, string, error) {
		f.Cursor, f.Limit = cursor, limit
		return n.ListDeliveries(r.Context(), f)
	}, func(d notify.Delivery) bool { return readable(p, d.SpaceID) }, func(d notify.Delivery) string { return d.ID })
	if err != nil {
		return err
	}
	out := apiv1.List[apiv1.Delivery]{Items: []apiv1.Delivery{}, NextCursor: nextCursor(r, next)}
	for _, d := range list {
		out.Items = append(out.Items, deliveryOut(d))
	}
	httpx.WriteJSON(w, http.StatusOK, out)
	return nil
}

// listScope checks space:read in the space a list is asked for; a list of
// every space is filtered item by item instead (readable): a caller sees
// only what they may read, and a page may then hold fewer than limit items.
func listScope(p auth.Principal, spaceID string) error {
	if spaceID == "" {
		return nil
	}
	return auth.Authorize(p, auth.SpaceRead, spaceID)
}

// readable reports whether p may read things of the space.
func readable(p auth.Principal, spaceID string) bool { return p.Can(auth.SpaceRead, spaceID) }

// readableStacks keeps the items whose stack (stackOf) p may read: lists
// of what a context, policy or integration is attached to live in their
// owner's space (often a parent readable by inheritance) and must not name
// stacks of spaces the caller cannot read. A stack deleted meanwhile is
// not readable.
func readableStacks[T any](ctx context.Context, a *API, p auth.Principal, items []T, stackOf func(T) string) ([]T, error) {
	ok := map[string]bool{}
	out := items[:0:0]
	for _, it := range items {
		sid := stackOf(it)
		if _, seen := ok[sid]; !seen {
			st, err := a.Stacks.Get(ctx, sid)
			switch {
			case errs.Is(err, errs.NotFound):
				ok[sid] = false
			case err != nil:
				return nil, err
			default:
				ok[sid] = readable(p, st.Space)
			}
		}
		if ok[sid] {
			out = append(out, it)
		}
	}
	return out, nil
}
