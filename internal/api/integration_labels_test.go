package api_test

import (
	"fmt"
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
