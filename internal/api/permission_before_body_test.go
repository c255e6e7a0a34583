package api_test

import (
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/gantry-iac/gantry/internal/auth"
	"github.com/gantry-iac/gantry/internal/space"
)

// bodyNamesTarget are the routes whose permission depends on the body (the
// stack to attach to, the space to import into): they decode first.
var bodyNamesTarget = map[string]bool{
	"POST /api/v1/policies/{id}/attachments":     true,
	"POST /api/v1/contexts/{id}/attachments":     true,
	"POST /api/v1/integrations/{id}/attachments": true,
	"POST /api/v1/policy-library/{name}/import":  true,
}

// TestPermissionBeforeBody sends a malformed body to every route that
// writes to an object named in its path, as a caller without the route's
// action (holding every other one) and as one who cannot see the object:
// the first gets 403, the second 403 or 404, neither 400. Whoever may not
// act learns that, not what is wrong with their request.
func TestPermissionBeforeBody(t *testing.T) {
	e := newRBACEnv(t)
	f := e.fixture(0)
	other := e.fixture(1)
	var all []string
	for _, c := range auth.Catalog {
		all = append(all, c.Name)
	}
	lacks := map[string]string{}
	n := 0
	for _, rt := range e.a.RouteTable() {
		method, _, _ := strings.Cut(rt.Pattern, " ")
		if rt.Action == auth.Authenticated || !strings.Contains(rt.Pattern, "{") || bodyNamesTarget[rt.Pattern] ||
			strings.Contains(rt.Pattern, "/tfstate") || (method != "POST" && method != "PUT" && method != "PATCH") {
			continue
		}
		n++
		if lacks[rt.Action] == "" {
			var others []string
			for _, a := range all {
				if a != rt.Action {
					others = append(others, a)
				}
			}
			lacks[rt.Action] = e.actor(fmt.Sprintf("lacks%d", n), space.Root, others)
		}
		// The route's action, only in a space that does not see the fixture.
		blind := e.actor(fmt.Sprintf("blind%d", n), other.space, []string{rt.Action})
		_, path, _ := matrixCall(rt.Pattern, f)
		send := func(token string) response {
			return e.send(request{method: method, path: path, token: token, contentType: "application/json", body: strings.NewReader(`{"malformed`)})
		}
		if r := send(lacks[rt.Action]); r.status != http.StatusForbidden {
			t.Errorf("%s without %s, malformed body: %s, want 403", rt.Pattern, rt.Action, r)
		}
		if auth.ActionRootOnly(rt.Action) || rootRoutes[rt.Pattern] {
			continue
		}
		if r := send(blind); r.status != http.StatusForbidden && r.status != http.StatusNotFound {
			t.Errorf("%s by a caller who cannot see the object, malformed body: %s, want 403 or 404", rt.Pattern, r)
		}
	}
	if n < 30 {
		t.Errorf("only %d routes checked: the route table changed?", n)
	}
}
