package api_test

import (
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/gantry-iac/gantry/internal/apiv1"
	"github.com/gantry-iac/gantry/internal/auth"
	"github.com/gantry-iac/gantry/internal/db"
	"github.com/gantry-iac/gantry/internal/db/dbtest"
)

// An integration labelled autoattach:<label> applies to every stack of its
// space (and inheriting ones) carrying that label: setting such a label is
// attaching it, and takes integration:attach, not only stack:update.
func TestStackLabelAttachingAnIntegrationNeedsAttach(t *testing.T) {
	e := newRBACEnv(t)
	f := e.fixture(1)
	e.must(e.do("POST", "/api/v1/integrations", map[string]any{"id": "aws-prod", "space": f.space, "type": "aws",
		"labels": []string{"autoattach:prod"}, "config": map[string]string{"role_arn": "arn:aws:iam::123456789012:role/prod"}}), http.StatusCreated, nil)
	dev := e.actor("dev", f.space, []string{auth.SpaceRead, auth.StackCreate, auth.StackUpdate})
	lead := e.actor("lead", f.space, []string{auth.SpaceRead, auth.StackCreate, auth.StackUpdate, auth.IntegrationAttach})
	send := func(token, method, path, body string) response {
		t.Helper()
		return e.send(request{method: method, path: path, token: token, body: strings.NewReader(body)})
	}
	refused := func(r response, what string) {
		t.Helper()
		if r.status != http.StatusForbidden || !strings.Contains(string(r.body), auth.IntegrationAttach) || !strings.Contains(string(r.body), "aws-prod") {
			t.Errorf("%s: %v, want 403 naming %s and the integration", what, r, auth.IntegrationAttach)
		}
	}
	stack := "/api/v1/stacks/" + f.stack
	refused(send(dev, "PATCH", stack, `{"labels": ["prod"]}`), "dev labels a stack prod")
	refused(send(dev, "POST", "/api/v1/stacks", `{"id": "newprod", "space": "`+f.space+`", "repository": "/tmp/r", "labels": ["prod"]}`), "dev creates a prod stack")
	if r := send(dev, "PATCH", stack, `{"labels": ["staging"]}`); r.status != http.StatusOK {
		t.Errorf("dev labels a stack staging: %v", r)
	}
	if r := send(lead, "PATCH", stack, `{"labels": ["prod"]}`); r.status != http.StatusOK {
		t.Errorf("lead (integration:attach) labels a stack prod: %v", r)
	}
	// Once attached by someone who may, other changes go on.
	if r := send(dev, "PATCH", stack, `{"description": "d"}`); r.status != http.StatusOK {
		t.Errorf("dev changes the description of a prod stack: %v", r)
	}
	if r := send(dev, "PATCH", stack, `{"labels": ["prod", "team:a"]}`); r.status != http.StatusOK {
		t.Errorf("dev adds a label to a prod stack: %v", r)
	}
}

// The attachments of an integration list every stack that gets its
// credentials, as those of a context do: explicit attachments, then the
// stacks it reaches through an autoattach label (via the label, read and
// write), only where the stack's space sees the integration's.
func TestIntegrationAttachmentsListAutoattached(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, d *db.DB) {
		e := newRBACEnvOn(t, d)
		f := e.fixture(1) // aws1 in sp1, attached to st1 (read)
		e.must(e.do("POST", "/api/v1/spaces", map[string]any{"id": "kid", "parent": f.space, "inherit": true}), http.StatusCreated, nil)
		e.must(e.do("POST", "/api/v1/spaces", map[string]any{"id": "loner", "parent": f.space}), http.StatusCreated, nil)
		for _, st := range []struct{ id, space, label string }{{"a-prod", f.space, "prod"}, {"b-dev", f.space, "dev"},
			{"c-kid", "kid", "prod"}, {"d-loner", "loner", "prod"}, {"e-root", "root", "prod"}} {
			e.must(e.do("POST", "/api/v1/stacks", map[string]any{"id": st.id, "space": st.space, "repository": pinnedRepo,
				"labels": []string{st.label}}), http.StatusCreated, nil)
		}
		list := func(token, path string) []string {
			t.Helper()
			var out apiv1.List[apiv1.IntegrationAttachment]
			r := e.as(token, "GET", path, nil)
			e.must(r, http.StatusOK, &out)
			var got []string
			for _, at := range out.Items {
				got = append(got, fmt.Sprintf("%s %s r=%v w=%v applied=%v", at.Stack, at.Via, at.Read, at.Write, at.Applied))
			}
			return got
		}
		path := "/api/v1/integrations/" + f.integration + "/attachments"
		if got := list(e.token, path); !slices.Equal(got, []string{f.stack + " explicit r=true w=false applied=true"}) {
			t.Errorf("without autoattach labels: %q", got)
		}
		e.must(e.do("PATCH", "/api/v1/integrations/"+f.integration, map[string]any{"labels": []string{"autoattach:prod"}}), http.StatusOK, nil)
		want := []string{f.stack + " explicit r=true w=false applied=true", "a-prod autoattach:prod r=true w=true applied=true",
			"c-kid autoattach:prod r=true w=true applied=true"}
		if got := list(e.token, path); !slices.Equal(got, want) {
			t.Errorf("autoattach:prod: %q, want %q", got, want)
		}
		e.must(e.do("PATCH", "/api/v1/integrations/"+f.integration, map[string]any{"labels": []string{"autoattach:*"}}), http.StatusOK, nil)
		want = []string{f.stack + " explicit r=true w=false applied=true", "a-prod autoattach:* r=true w=true applied=true",
			"b-dev autoattach:* r=true w=true applied=true", "c-kid autoattach:* r=true w=true applied=true"}
		if got := list(e.token, path); !slices.Equal(got, want) {
			t.Errorf("autoattach:*: %q, want %q", got, want)
		}
		// As the contexts' list says it.
		e.must(e.do("PATCH", "/api/v1/contexts/"+f.context, map[string]any{"labels": []string{"autoattach:*"}}), http.StatusOK, nil)
		var ctxList apiv1.List[apiv1.ContextAttachment]
		e.must(e.do("GET", "/api/v1/contexts/"+f.context+"/attachments", nil), http.StatusOK, &ctxList)
		var ctxStacks []string
		for _, at := range ctxList.Items {
			ctxStacks = append(ctxStacks, at.Stack+" "+at.Via)
		}
		if want := []string{"a-prod autoattach:*", "b-dev autoattach:*", "c-kid autoattach:*", f.stack + " autoattach:*"}; !slices.Equal(ctxStacks, want) {
			t.Errorf("the context's attachments: %q, want %q", ctxStacks, want)
		}
	})
}

// An autoattach label on an integration, context or policy attaches it to
// stacks (autoattach:* to every stack that sees its space): setting,
// changing or removing one takes the action attaching by hand takes
// (integration:attach; stack:update for contexts and policies) in its
// space, besides create/update; other changes do not.
func TestAutoattachLabelsNeedTheAttachAction(t *testing.T) {
	e := newRBACEnv(t)
	f := e.fixture(1)
	base := []string{auth.SpaceRead, auth.IntegrationCreate, auth.IntegrationUpdate, auth.ContextCreate, auth.ContextUpdate,
		auth.PolicyCreate, auth.PolicyUpdate}
	owner := e.actor("owner", f.space, base)
	lead := e.actor("lead", f.space, append(slices.Clone(base), auth.IntegrationAttach, auth.StackUpdate))
	refused := func(r response, action, what string) {
		t.Helper()
		d := wantError(t, r, http.StatusForbidden, "forbidden")
		if !strings.Contains(d.Message, "missing action "+action) || !strings.Contains(d.Message, "autoattach") {
			t.Errorf("%s: %v, want 403 naming %s", what, r, action)
		}
	}
	ok := func(r response, status int, what string) {
		t.Helper()
		if r.status != status {
			t.Errorf("%s: %v, want %d", what, r, status)
		}
	}
	aws := map[string]string{"role_arn": "arn:aws:iam::123456789012:role/x"}
	pol := "package spacelift\ndeny contains \"no\" if false\n"
	creates := []struct {
		kind, path, action string
		body               map[string]any
	}{
		{"integration", "/api/v1/integrations", auth.IntegrationAttach, map[string]any{"space": f.space, "type": "aws", "config": aws}},
		{"context", "/api/v1/contexts", auth.StackUpdate, map[string]any{"space": f.space}},
		{"policy", "/api/v1/policies", auth.StackUpdate, map[string]any{"space": f.space, "type": "PLAN", "body": pol}},
	}
	for _, c := range creates {
		body := func(id string, labels ...string) map[string]any {
			b := maps.Clone(c.body)
			b["id"], b["labels"] = id, labels
			return b
		}
		refused(e.as(owner, "POST", c.path, body("o1", "autoattach:*")), c.action, "owner creates an autoattach:* "+c.kind)
		r := e.as(owner, "POST", c.path, body("o1", " autoattach:prod"))
		refused(r, c.action, "owner creates an autoattach:prod "+c.kind)
		if d := wantError(t, r, http.StatusForbidden, "forbidden"); !strings.Contains(d.Message, "labels autoattach:prod of") {
			t.Errorf("the refusal names not the label set: %q", d.Message)
		}
		ok(e.as(owner, "POST", c.path, body("o1", "team")), http.StatusCreated, "owner creates a "+c.kind+" without autoattach")
		one := c.path + "/o1"
		refused(e.as(owner, "PATCH", one, map[string]any{"labels": []string{"team", "autoattach:*"}}), c.action, "owner labels a "+c.kind+" autoattach:*")
		ok(e.as(owner, "PATCH", one, map[string]any{"labels": []string{"team", "other"}}), http.StatusOK, "owner changes other labels of a "+c.kind)
		ok(e.as(lead, "POST", c.path, body("l1", "autoattach:*")), http.StatusCreated, "lead creates an autoattach:* "+c.kind)
		ok(e.as(owner, "PATCH", c.path+"/l1", map[string]any{"description": "d", "labels": []string{"autoattach:*", "x"}}), http.StatusOK,
			"owner changes a "+c.kind+" keeping its autoattach label")
		refused(e.as(owner, "PATCH", c.path+"/l1", map[string]any{"labels": []string{"x"}}), c.action, "owner removes the autoattach label of a "+c.kind)
		ok(e.as(lead, "PATCH", one, map[string]any{"labels": []string{"autoattach:prod"}}), http.StatusOK, "lead labels a "+c.kind+" autoattach:prod")
	}
	// The policy library import with labels, or with the entry's own.
	refused(e.as(owner, "POST", "/api/v1/policy-library/approval-destroy-runs/import", map[string]any{"space": f.space,
		"labels": []string{"autoattach:production"}}), auth.StackUpdate, "owner imports a library policy autoattach:production")
}
