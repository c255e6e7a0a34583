package api_test

import (
	"context"
	"encoding/json"
	"net/http"
	"slices"
	"testing"

	"github.com/gantry-iac/gantry/internal/api"
	"github.com/gantry-iac/gantry/internal/apiv1"
	"github.com/gantry-iac/gantry/internal/auth"
)

// sessionView is what a policy sees of who acted.
type sessionView struct {
	Login     string   `json:"login"`
	Name      string   `json:"name"`
	Admin     bool     `json:"admin"`
	Teams     []string `json:"teams"`
	CreatorIP string   `json:"creator_ip"`
}

// TestPolicySessionsAreThePrincipals: creator_session and a review's
// session say whether the principal really is an admin and carry its IdP
// groups. An API key bound to space-writer is no admin (its run waits for
// review), an SSO user's groups are its teams, and a user the login
// policy made an admin is one. A user's name is the display name single
// sign-on gave (a key's, its name), creator_ip the address the request
// came from. The stack's contexts are those that apply to it.
func TestPolicySessionsAreThePrincipals(t *testing.T) {
	e := newRBACEnv(t, func(a *api.API) { a.Runs.Policies, a.Policies.Contexts = a.Policies, a.Contexts.IDsForStack })
	ctx := context.Background()
	e.must(e.do("POST", "/api/v1/spaces", map[string]any{"id": "team"}), http.StatusCreated, nil)
	e.must(e.do("POST", "/api/v1/stacks", map[string]any{"id": "app", "space": "team", "repository": pinnedRepo}), http.StatusCreated, nil)
	e.must(e.do("POST", "/api/v1/policies", map[string]any{"id": "who", "space": "team", "type": "APPROVAL", "labels": []string{"autoattach:*"},
		"body": "package spacelift\napprove if input.run.creator_session.admin\napprove if count(input.reviews.current.approvals) > 0\nsample := true\n"}),
		http.StatusCreated, nil)

	var key apiv1.APIKeyCreated
	e.must(e.do("POST", "/api/v1/api-keys", map[string]any{"name": "ci"}), http.StatusCreated, &key)
	e.must(e.do("POST", "/api/v1/role-bindings", map[string]any{"role": auth.RoleWriter, "space": "team", "api_key": key.ID}), http.StatusCreated, nil)
	e.must(e.do("POST", "/api/v1/role-bindings", map[string]any{"role": auth.RoleWriter, "space": "team", "group": "ops"}), http.StatusCreated, nil)
	_, carol := e.signedInUser("carol", `["ops","sre"]`)
	dave, daveToken := e.signedInUser("dave", `["platform"]`)
	if _, err := e.db.Exec(ctx, `UPDATE users SET admin = TRUE, name = 'Dave Jones' WHERE id = $1`, dave); err != nil {
		t.Fatal(err)
	}
	if _, err := e.db.Exec(ctx, `UPDATE users SET name = 'Carol Smith' WHERE login = 'carol'`); err != nil {
		t.Fatal(err)
	}
	// Contexts: one attached by hand, one by label, one of the stack's
	// root space, which team does not inherit from, labelled for every stack.
	e.must(e.do("POST", "/api/v1/contexts", map[string]any{"id": "aws", "name": "aws", "space": "team"}), http.StatusCreated, nil)
	e.must(e.do("POST", "/api/v1/contexts", map[string]any{"id": "shared", "name": "shared", "space": "team", "labels": []string{"autoattach:*"}}), http.StatusCreated, nil)
	e.must(e.do("POST", "/api/v1/contexts", map[string]any{"id": "unused", "name": "unused", "space": "root", "labels": []string{"autoattach:*"}}), http.StatusCreated, nil)
	e.must(e.do("POST", "/api/v1/contexts/aws/attachments", map[string]any{"stack": "app", "priority": 1}), http.StatusOK, nil)

	start := func(token string) apiv1.Run {
		t.Helper()
		var rn apiv1.Run
		e.must(e.as(token, "POST", "/api/v1/stacks/app/runs", map[string]any{"type": "PROPOSED", "sha": pinnedSHA}), http.StatusCreated, &rn)
		return rn
	}
	byKey := start(key.Token)
	if byKey.State != "PENDING_REVIEW" {
		t.Errorf("a space-writer key's run is %s, want PENDING_REVIEW (the key is no admin)", byKey.State)
	}
	byAdmin := start(daveToken)
	if byAdmin.State == "PENDING_REVIEW" {
		t.Errorf("an admin user's run waits for review: %+v", byAdmin)
	}
	var reviewed apiv1.Run
	e.must(e.as(carol, "POST", "/api/v1/runs/"+byKey.ID+"/reviews", map[string]any{"decision": "approve"}), http.StatusOK, &reviewed)
	if reviewed.State == "PENDING_REVIEW" {
		t.Errorf("approved run still waits: %+v", reviewed)
	}

	// The inputs as the policy saw them.
	samples, err := e.a.Policies.Samples(ctx, "who", "", 10)
	if err != nil {
		t.Fatal(err)
	}
	type input struct {
		Run struct {
			Creator sessionView `json:"creator_session"`
		} `json:"run"`
		Stack struct {
			Contexts []string `json:"contexts"`
		} `json:"stack"`
		Reviews struct {
			Current struct {
				Approvals []struct {
					Session sessionView `json:"session"`
				} `json:"approvals"`
			} `json:"current"`
		} `json:"reviews"`
	}
	creators := map[string]sessionView{}
	var reviewer *sessionView
	for _, sm := range samples {
		full, err := e.a.Policies.Sample(ctx, "who", sm.Key)
		if err != nil {
			t.Fatal(err)
		}
		var in input
		if err := json.Unmarshal(full.Input, &in); err != nil {
			t.Fatal(err)
		}
		creators[sm.RunID] = in.Run.Creator
		if want := []string{"aws", "shared"}; !slices.Equal(in.Stack.Contexts, want) {
			t.Errorf("stack.contexts = %q, want %q", in.Stack.Contexts, want)
		}
		if a := in.Reviews.Current.Approvals; len(a) > 0 {
			reviewer = &a[0].Session
		}
	}
	want := map[string]sessionView{
		byKey.ID:   {Login: "ci", Name: "ci", Admin: false, Teams: []string{}, CreatorIP: "127.0.0.1"},
		byAdmin.ID: {Login: "dave", Name: "Dave Jones", Admin: true, Teams: []string{"platform"}, CreatorIP: "127.0.0.1"},
	}
	for runID, w := range want {
		got, ok := creators[runID]
		if !ok || got.Login != w.Login || got.Name != w.Name || got.Admin != w.Admin || !slices.Equal(got.Teams, w.Teams) || got.CreatorIP != w.CreatorIP {
			t.Errorf("creator_session of run %s = %+v (sampled: %v), want %+v", runID, got, ok, w)
		}
	}
	if reviewer == nil || reviewer.Login != "carol" || reviewer.Name != "Carol Smith" || reviewer.Admin ||
		!slices.Equal(reviewer.Teams, []string{"ops", "sre"}) || reviewer.CreatorIP != "127.0.0.1" {
		t.Errorf("review session = %+v, want carol (Carol Smith), no admin, teams [ops sre], from 127.0.0.1", reviewer)
	}
}
