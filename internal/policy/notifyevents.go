package policy

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/gantry-iac/gantry/internal/drift"
	"github.com/gantry-iac/gantry/internal/errs"
	"github.com/gantry-iac/gantry/internal/notify"
	"github.com/gantry-iac/gantry/internal/policy/engine"
	"github.com/gantry-iac/gantry/internal/run"
	"github.com/gantry-iac/gantry/internal/truncate"
)

// handleRunUpdated evaluates the notification policies of a run's space
// (and the ancestors it inherits from) on one state change, and stores the
// messages they ask for with the event's completion, in one transaction.
func (s *Service) handleRunUpdated(ctx context.Context, ev event) error {
	r, err := s.runs.Get(ctx, ev.RunID)
	if errs.Is(err, errs.NotFound) {
		return s.doneEvent(ctx, ev) // deleted with its stack
	}
	if err != nil {
		return err
	}
	pols, err := s.ForSpace(ctx, r.SpaceID, engine.TypeNotification)
	if err != nil {
		return err
	}
	if len(pols) == 0 {
		return s.doneEvent(ctx, ev)
	}
	input, lineage, defaults, err := s.notificationInput(ctx, r, ev)
	if err != nil {
		return err
	}
	evaluation, err := s.evaluate(ctx, pols, engine.TypeNotification, input, r.ID)
	if err != nil {
		return err
	}
	msgs := messagesOf(evaluation.Decision, r, ev, lineage, defaults, s.runURL(r.ID))
	if err := s.withPhaseLogs(ctx, r, msgs); err != nil {
		return err
	}
	err = s.db.Tx(ctx, func(ctx context.Context) error {
		if err := s.record(evaluation)(ctx, r.ID); err != nil {
			return err
		}
		if err := s.notify.Enqueue(ctx, msgs); err != nil {
			return err
		}
		return s.doneEvent(ctx, ev)
	})
	if err == nil && len(msgs) > 0 {
		s.notify.Wake()
	}
	return err
}

func (s *Service) notificationInput(ctx context.Context, r run.Run, ev event) (map[string]any, []string, notificationDefaults, error) {
	var defaults notificationDefaults
	v, err := s.stackView(ctx, r.StackID)
	if err != nil {
		return nil, nil, defaults, err
	}
	lineage, _, err := s.lineageIDs(ctx, r.SpaceID)
	if err != nil {
		return nil, nil, defaults, err
	}
	eps, err := s.notify.Endpoints(ctx, lineage)
	if err != nil {
		return nil, nil, defaults, err
	}
	endpoints := []any{}
	for _, e := range eps {
		// kind (a Gantry addition) lets a rule pick the endpoints of its kind.
		endpoints = append(endpoints, obj{"id": e.ID, "labels": strs(e.Labels), "kind": e.Kind})
	}
	ts, err := s.runs.Transitions(ctx, r.ID)
	if err != nil {
		return nil, nil, defaults, err
	}
	at := time.Unix(0, ev.Payload.At)
	history, timing := []any{}, []any{}
	username, note := "", ev.Payload.Reason
	// The history up to this change: by its number (changes made in one
	// transaction share their time), or by time for events stored before
	// they carried it.
	upTo := func(t run.Transition) bool {
		if ev.Payload.Seq > 0 {
			return t.Seq <= ev.Payload.Seq
		}
		return !t.At.After(at)
	}
	for i, t := range ts {
		if !upTo(t) {
			break
		}
		history = append(history, obj{"state": t.To, "note": t.Reason, "timestamp": ns(t.At), "actor": t.Actor})
		end := at
		if i+1 < len(ts) && upTo(ts[i+1]) {
			end = ts[i+1].At
		}
		timing = append(timing, obj{"state": t.To, "duration": end.Sub(t.At).Nanoseconds()})
		if t.To == ev.Payload.State {
			username, note = t.Actor, t.Reason
		}
	}
	receipts, err := s.Receipts(ctx, r.ID)
	if err != nil {
		return nil, nil, defaults, err
	}
	rcpts, deny, warn := []any{}, []any{}, []any{}
	for _, rc := range receipts {
		if rc.Type == engine.TypeNotification {
			continue
		}
		rcpts = append(rcpts, obj{"type": rc.Type, "name": rc.Name, "outcome": rc.Outcome, "flags": strs(nonNil(rc.Flags))})
		if rc.Type == engine.TypePlan && rc.Outcome == "deny" {
			deny = append(deny, strs(rc.Messages)...)
		} else if rc.Type == engine.TypePlan && rc.Outcome == "warn" {
			warn = append(warn, strs(rc.Messages)...)
		}
	}
	changes, plan, err := s.notificationChanges(ctx, r)
	if err != nil {
		return nil, nil, defaults, err
	}
	ro, err := s.runInput(ctx, r, v, changes, plan)
	if err != nil {
		return nil, nil, defaults, err
	}
	ro["state"], ro["states_history"] = ev.Payload.State, history
	input := obj{
		"account":           obj{"name": accountName},
		"webhook_endpoints": endpoints,
		"run_updated": obj{
			"state": ev.Payload.State, "username": username, "note": note, "run": ro, "stack": stackObject(v),
			"urls": obj{"run": s.runURL(r.ID)}, "timing": timing,
			"policy_receipts": rcpts, "plan_policy_decision": obj{"deny": deny, "warn": warn},
			// A Gantry addition: the change's number in the run's timeline
			// (1 for QUEUED at creation, then one more per change), for
			// receivers to order a run's messages, which are not delivered
			// in order.
			"sequence": ev.Payload.Seq,
		},
	}
	defaults.webhook = defaultWebhookPayload(r, v, ev.Payload.State, ev.Payload.Seq, at, plan)
	defaults.slack = defaultSlackMessage(r, v, ev.Payload.State, note, s.runURL(r.ID))
	return input, lineage, defaults, nil
}

// runURL is the link to a run in notification input (`urls.run`) and in
// the "Open run" button of Teams cards.
func (s *Service) runURL(runID string) string {
	return strings.TrimSuffix(s.PublicURL, "/") + "/api/v1/runs/" + runID
}

// messagesOf turns a notification decision into messages to enqueue;
// runURL is the link Teams cards offer (left out unless absolute). A field
// of a rule that has the wrong type (a number as a header value or a
// severity) is not read as empty: the message carries the problem and its
// delivery fails saying so.
func messagesOf(d engine.Decision, r run.Run, ev event, lineage []string, def notificationDefaults, runURL string) []notify.Message {
	base := notify.Message{SpaceID: r.SpaceID, RunID: r.ID, StackID: r.StackID, Event: "run_updated:" + ev.Payload.State, AllowedSpaces: lineage}
	var out []notify.Message
	for _, w := range d.Webhook {
		m, f := base, rule{kind: "webhook", m: w}
		m.Kind, m.EndpointID, m.DefaultPayload = notify.KindWebhook, f.str("endpoint_id"), def.webhook
		if p, ok := w["payload"]; ok && p != nil {
			m.Payload, _ = json.Marshal(p)
		}
		m.Method = f.str("method")
		m.Headers = f.headers()
		m.Problem = f.problem
		out = append(out, m)
	}
	for _, sl := range d.Slack {
		m, f := base, rule{kind: "slack", m: sl}
		// channel_id matches the endpoint's id whatever its case, so that
		// Spacelift's upper-case Slack channel ids name endpoints as they are.
		m.Kind, m.EndpointID, m.Text = notify.KindSlack, strings.ToLower(f.str("channel_id")), f.slackText(def.slack)
		m.Problem = f.problem
		out = append(out, m)
	}
	for _, tm := range d.Teams {
		m, f := base, rule{kind: "teams", m: tm}
		m.Kind, m.EndpointID, m.Title, m.Text = notify.KindTeams, strings.ToLower(f.str("channel_id")), f.str("title"), f.str("message")
		m.RunURL = runURL
		m.Problem = f.problem
		out = append(out, m)
	}
	for _, em := range d.Email {
		m, f := base, rule{kind: "email", m: em}
		m.Kind, m.EndpointID, m.Subject, m.Body = notify.KindEmail, f.str("endpoint_id"), f.str("subject"), f.str("body")
		m.To = emailRecipients(em["to"])
		m.Problem = f.problem
		out = append(out, m)
	}
	for _, in := range d.Inbox {
		m, f := base, rule{kind: "inbox", m: in}
		m.Kind, m.Title, m.Body, m.Severity = notify.KindInbox, f.str("title"), f.str("body"), strings.ToUpper(f.str("severity"))
		m.Problem = f.problem
		out = append(out, m)
	}
	return out
}

// rule reads the fields of one notification rule, keeping the first
// problem found.
type rule struct {
	kind    string
	m       map[string]any
	problem string
}

func (r *rule) fail(format string, args ...any) {
	if r.problem == "" {
		r.problem = fmt.Sprintf("the %s rule's ", r.kind) + fmt.Sprintf(format, args...)
	}
}

// str is a string field; absent or null is "".
func (r *rule) str(name string) string {
	v, ok := r.m[name]
	if !ok || v == nil {
		return ""
	}
	s, ok := v.(string)
	if !ok {
		r.fail("%s must be a string, got %s", name, jsonText(v))
	}
	return s
}

// headers is a webhook rule's headers: an object of strings.
func (r *rule) headers() map[string]string {
	v, ok := r.m["headers"]
	if !ok || v == nil {
		return nil
	}
	h, ok := v.(map[string]any)
	if !ok {
		r.fail("headers must be an object of strings, got %s", jsonText(v))
		return nil
	}
	out := map[string]string{}
	for _, k := range slices.Sorted(maps.Keys(h)) {
		s, ok := h[k].(string)
		if !ok {
			r.fail("header %q must be a string, got %s", k, jsonText(h[k]))
		}
		out[k] = s
	}
	return out
}

func jsonText(v any) string {
	b, _ := json.Marshal(v)
	if len(b) > 100 {
		return truncate.String(string(b), 100) + "..."
	}
	return string(b)
}

// emailRecipients reads the `to` of an email rule: a list (or set) of
// addresses, or one address. Anything else gives a recipient the notify
// package refuses, so that the delivery fails and says why rather than
// going to the endpoint's default recipients.
func emailRecipients(v any) []string {
	switch v := v.(type) {
	case nil:
		return nil
	case string:
		return []string{v}
	case []any:
		out := make([]string, 0, len(v))
		for _, e := range v {
			s, ok := e.(string)
			if !ok {
				b, _ := json.Marshal(e)
				s = string(b)
			}
			out = append(out, s)
		}
		return out
	}
	b, _ := json.Marshal(v)
	return []string{string(b)}
}

// notificationChanges are the run's changes as Spacelift's notification
// input carries them: the plan's resource changes, and for a drift
// detection run the resources that drifted (not the configuration's
// pending changes), each with the attributes that differ. The plan, when
// it was read (not for drift detection runs), is returned too.
func (s *Service) notificationChanges(ctx context.Context, r run.Run) ([]any, map[string]any, error) {
	if !r.Drift {
		plan, err := s.loadPlan(ctx, r.ID)
		if err != nil || plan == nil {
			return nil, nil, nil // a plan that does not parse leaves the changes empty
		}
		return planChanges(plan), plan, nil
	}
	data, err := s.runs.Artifact(ctx, r.ID, run.ArtifactPlanJSON)
	if errs.Is(err, errs.NotFound) {
		return nil, nil, nil
	}
	if err != nil {
		return nil, nil, err
	}
	res, err := drift.Parse(data)
	if err != nil {
		return nil, nil, nil
	}
	out := []any{}
	for _, x := range res.Resources {
		attrs := []any{}
		for _, a := range x.Attributes {
			attrs = append(attrs, a.Name)
		}
		name := x.Address
		if i := strings.LastIndexByte(name, '.'); i >= 0 {
			name = name[i+1:]
		}
		out = append(out, obj{"phase": "plan", "action": x.Action, "moved": false, "cloud": x.Cloud, "attributes": attrs,
			"entity": obj{"address": x.Address, "name": name, "type": x.Type, "entity_type": "resource"}})
	}
	return out, nil, nil
}
