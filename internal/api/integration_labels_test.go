package api_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/gantry-iac/gantry/internal/auth"
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
