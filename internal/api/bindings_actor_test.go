package api_test

import (
	"net/http"
	"testing"

	"github.com/gantry-iac/gantry/internal/apiv1"
)

// A binding names its actor as whoami, run timelines and the audit trail
// do (api_key::ci, user::alice), beside the actor's type and id.
func TestBindingsNameTheirActor(t *testing.T) {
	e := newRBACEnv(t)
	var ci apiv1.APIKeyCreated
	e.must(e.do("POST", "/api/v1/api-keys", map[string]any{"name": "ci"}), http.StatusCreated, &ci)
	uid, _ := e.signedInUser("alice", `[]`)
	var byKey apiv1.RoleBinding
	e.must(e.do("POST", "/api/v1/role-bindings", map[string]any{"role": "space-reader", "api_key": ci.ID}), http.StatusCreated, &byKey)
	if byKey.Actor != "api_key::ci" || byKey.ActorType != "api_key" || byKey.ActorID != ci.ID {
		t.Errorf("binding of key ci = %+v, want actor api_key::ci and its id", byKey)
	}
	e.must(e.do("POST", "/api/v1/role-bindings", map[string]any{"role": "space-reader", "user": "alice"}), http.StatusCreated, nil)
	e.must(e.do("POST", "/api/v1/role-bindings", map[string]any{"role": "space-reader", "group": "platform"}), http.StatusCreated, nil)

	var l apiv1.List[apiv1.RoleBinding]
	e.must(e.do("GET", "/api/v1/role-bindings", nil), http.StatusOK, &l)
	want := map[string]string{ci.ID: "api_key::ci", uid: "user::alice", "platform": "group::platform"}
	for _, b := range l.Items {
		if b.Actor != want[b.ActorID] {
			t.Errorf("binding %s of %s %s: actor %q, want %q", b.ID, b.ActorType, b.ActorID, b.Actor, want[b.ActorID])
		}
		delete(want, b.ActorID)
	}
	if len(want) != 0 {
		t.Errorf("bindings missing: %v", want)
	}
	// The whoami of the key names it the same way.
	var who apiv1.Whoami
	e.must(e.as(ci.Token, "GET", "/api/v1/whoami", nil), http.StatusOK, &who)
	if who.Actor != "api_key::ci" {
		t.Errorf("whoami of key ci: %q", who.Actor)
	}
}
