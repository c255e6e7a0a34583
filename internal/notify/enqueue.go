package notify

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/gantry-iac/gantry/internal/errs"
	"github.com/gantry-iac/gantry/internal/id"
)

// MaxBody bounds a message body (webhook payload or Slack text).
const MaxBody = 1 << 20

const maxBody = MaxBody

// methods a webhook message may use.
var methods = []string{"GET", "POST", "PUT", "PATCH", "DELETE"}

// delivery is a row of notify_deliveries about to be written.
type delivery struct {
	id, kind, endpointID, method, headers, body, status, lastError string
	endpointRef                                                    int64 // the endpoint's created_at, 0 if none
}

// Enqueue stores msgs: one delivery per webhook or Slack message, one inbox
// item per inbox message. It runs in the context's transaction if there is
// one (the run update that caused the messages), so the messages are stored
// if and only if the update commits; call Wake after the commit.
//
// A message that cannot be delivered (unknown or disabled endpoint, an
// endpoint in a space the run cannot see, a malformed payload) is stored as
// a FAILED delivery that says why, rather than dropped.
func (s *Service) Enqueue(ctx context.Context, msgs []Message) error {
	if len(msgs) == 0 {
		return nil
	}
	return s.db.Tx(ctx, func(ctx context.Context) error {
		for _, m := range msgs {
			if err := s.enqueueOne(ctx, m); err != nil {
				return err
			}
		}
		return nil
	})
}

func (s *Service) enqueueOne(ctx context.Context, m Message) error {
	if m.SpaceID == "" {
		return errs.E(errs.Invalid, "a notification needs the space of its run")
	}
	t := now().UnixNano()
	var d delivery
	switch m.Kind {
	case KindInbox:
		reason := m.Problem
		if reason == "" {
			reason = checkSeverity(m.Severity)
		}
		if reason == "" {
			return s.addInbox(ctx, m, t)
		}
		// Not stored with another severity than the rule asked for: a
		// FAILED delivery says why, as for the other channels.
		b := marshalPlain(map[string]string{"title": m.Title, "body": m.Body, "severity": m.Severity})
		d = delivery{id: id.New("dlv"), kind: KindInbox, headers: "{}", body: string(b), status: StatusFailed,
			lastError: reason + " (the inbox item was not stored)"}
	case KindWebhook, KindSlack, KindTeams, KindEmail:
		var err error
		if d, err = s.prepare(ctx, m); err != nil {
			return err
		}
	default:
		return errs.E(errs.Invalid, "notification kind must be webhook, slack, teams, email or inbox, got %q", m.Kind)
	}
	if d.lastError != "" {
		s.log.WarnContext(ctx, "notification not deliverable", "delivery_id", d.id, "endpoint_id", m.EndpointID,
			"run_id", m.RunID, "error", d.lastError)
	}
	_, err := s.db.Exec(ctx, `INSERT INTO notify_deliveries (id, kind, endpoint_id, endpoint_created_at, space_id, run_id,
		stack_id, event, method, headers, body, status, next_attempt_at, last_error, created_at, updated_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $13, $13)`,
		d.id, d.kind, dbText(d.endpointID, maxShort), d.endpointRef, dbText(m.SpaceID, maxShort), dbText(m.RunID, maxShort),
		dbText(m.StackID, maxShort), dbText(m.Event, maxShort), d.method, dbText(d.headers, 0), dbText(d.body, 0),
		d.status, t, dbText(d.lastError, maxError))
	return err
}

// endpointField is the field of a rule that names the endpoint, by kind.
var endpointField = map[string]string{KindWebhook: "endpoint_id", KindSlack: "channel_id", KindTeams: "channel_id", KindEmail: "endpoint_id"}

// prepare builds the delivery of a webhook, Slack, Teams or email message;
// a message that cannot be delivered gets status FAILED and the reason.
func (s *Service) prepare(ctx context.Context, m Message) (delivery, error) {
	d := delivery{id: id.New("dlv"), kind: m.Kind, endpointID: m.EndpointID, method: "POST", headers: "{}", status: StatusPending}
	fail := func(format string, args ...any) (delivery, error) {
		d.status, d.lastError = StatusFailed, fmt.Sprintf(format, args...)
		return d, nil
	}
	if m.Kind == KindEmail {
		d.method = "SMTP"
	}
	body, reason := messageBody(m)
	d.body = body
	if reason != "" {
		return fail("%s", reason)
	}
	if m.Problem != "" {
		return fail("%s", m.Problem)
	}
	if m.Kind == KindWebhook {
		if m.Method != "" {
			d.method = strings.ToUpper(m.Method)
		}
		if !slices.Contains(methods, d.method) {
			return fail("method %q is not one of %s", m.Method, strings.Join(methods, ", "))
		}
		if err := checkHeaders(m.Headers, false); err != nil {
			return fail("%s", errs.Public(err))
		}
		if len(m.Headers) > 0 {
			h, _ := json.Marshal(m.Headers)
			d.headers = string(h)
		}
	}
	if m.EndpointID == "" {
		return fail("the %s message names no endpoint (%s is empty)", m.Kind, endpointField[m.Kind])
	}
	// An endpoint the run's space may not use reads as one that does not
	// exist: deliveries are read by whoever sees the run, and must not
	// tell what exists where they cannot look.
	missing := func() (delivery, error) {
		return fail("endpoint %q does not exist in the spaces runs in space %q may use (their own and the ancestors they inherit from)", m.EndpointID, m.SpaceID)
	}
	if !id.ValidSlug(m.EndpointID) {
		return missing()
	}
	e, err := s.GetEndpoint(ctx, m.EndpointID)
	switch {
	case errs.Is(err, errs.NotFound):
		return missing()
	case err != nil:
		return d, err
	}
	allowed := m.AllowedSpaces
	if allowed == nil {
		allowed = []string{m.SpaceID}
	}
	switch {
	case !slices.Contains(allowed, e.SpaceID):
		return missing()
	case m.Kind != e.Kind:
		return fail("%s", kindMismatch(m.Kind, e.Kind, e.ID))
	case !e.Enabled:
		return fail("endpoint %q is disabled", e.ID)
	}
	if m.Kind == KindEmail {
		// The recipients are resolved now, so the delivery shows them.
		body, reason := emailBody(m, e.Email.To)
		if reason != "" {
			return fail("%s", reason)
		}
		d.body = body
	}
	d.endpointRef = e.CreatedAt.UnixNano()
	return d, nil
}

// kindMismatch says why a message of one kind is not sent to an endpoint of
// another: a webhook rule chooses the method, headers and body of the
// request, which a Slack or Teams URL must not get, and a Slack message is
// not what a webhook or Teams receiver expects.
func kindMismatch(msgKind, endpointKind, endpointID string) string {
	return fmt.Sprintf("endpoint %q is %s %s endpoint: %s messages need %s %s endpoint", endpointID, article(endpointKind), endpointKind,
		msgKind, article(msgKind), msgKind)
}

// article is the indefinite article of a kind's name.
func article(kind string) string {
	if kind != "" && strings.ContainsRune("aeiou", rune(kind[0])) {
		return "an"
	}
	return "a"
}

// messageBody returns the JSON document to send, or why there is none.
// For email it only checks the message: its body (with the recipients)
// is made once the endpoint is known.
func messageBody(m Message) (string, string) {
	switch m.Kind {
	case KindSlack, KindTeams:
		if strings.TrimSpace(m.Text) == "" {
			return "", "the " + m.Kind + " message is empty"
		}
		b, _ := json.Marshal(map[string]string{"text": m.Text})
		if m.Kind == KindTeams {
			b = teamsCardJSON(m.Title, m.Text, m.RunURL)
		}
		return string(b), tooLarge(b)
	case KindEmail:
		if err := checkSubject(m.Subject); err != nil {
			return "", errs.Public(err)
		}
		if _, err := parseAddresses("to", m.To); err != nil {
			return "", errs.Public(err)
		}
		b := marshalPlain(emailDoc{Subject: m.Subject, Body: m.Body, To: m.To})
		return string(b), tooLarge(b)
	}
	body := m.Payload
	if len(body) == 0 || string(body) == "null" {
		body = m.DefaultPayload
	}
	if len(body) == 0 {
		b, _ := json.Marshal(map[string]string{"event": m.Event, "run_id": m.RunID, "stack_id": m.StackID, "space_id": m.SpaceID})
		body = b
	}
	if !json.Valid(body) {
		return "", "the webhook payload is not valid JSON"
	}
	return string(body), tooLarge(body)
}

func tooLarge(b []byte) string {
	if len(b) > maxBody {
		return fmt.Sprintf("the message body is %d bytes, more than the limit of %d", len(b), maxBody)
	}
	return ""
}

// Wake makes the dispatcher look for due deliveries now, here and (on
// PostgreSQL) on the other replicas. Call it after the transaction that
// enqueued messages commits.
func (s *Service) Wake() {
	s.wakeLocal()
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := s.db.Notify(ctx, wakeChannel, ""); err != nil {
			s.log.Debug("notify wake not sent to other replicas", "error", err)
		}
	}()
}

func (s *Service) wakeLocal() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}
