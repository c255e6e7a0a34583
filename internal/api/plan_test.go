package api_test

import (
	"context"
	"net/http"
	"strings"
	"testing"

	"github.com/gantry-iac/gantry/internal/apiv1"
	"github.com/gantry-iac/gantry/internal/run"
	"github.com/gantry-iac/gantry/internal/tofu"
)

// A run's plan JSON holds the stack's state and the values OpenTofu marks
// sensitive: a reader gets it redacted, whoever may download the state
// gets it whole.
func TestRunPlanRedactedForReaders(t *testing.T) {
	e := newAPIEnv(t)
	e.must(e.do("POST", "/api/v1/spaces", map[string]any{"id": "team"}), http.StatusCreated, nil)
	e.createStack("web", map[string]any{"space": "team"})
	rn := e.createRun("web", "PROPOSED")
	const plan = `{"format_version":"1.2",
		"variables":{"dbpass":{"value":"Sup3rS3cret"}},
		"configuration":{"root_module":{"variables":{"dbpass":{"sensitive":true}}}},
		"resource_changes":[{"address":"terraform_data.x","change":{"actions":["update"],
			"before":{"input":"old-Sup3rS3cret"},"after":{"input":"new-Sup3rS3cret"},
			"before_sensitive":{"input":true},"after_sensitive":{"input":true}}}],
		"prior_state":{"values":{"root_module":{"resources":[{"address":"terraform_data.y","values":{"token":"unmarked-state-value"}}]}}}}`
	if err := e.runs.PutArtifact(context.Background(), rn.ID, run.ArtifactPlanJSON, []byte(plan)); err != nil {
		t.Fatal(err)
	}
	for _, k := range []struct{ name, role string }{{"reader", "space-reader"}, {"writer", "space-writer"}} {
		var key apiv1.APIKeyCreated
		e.must(e.do("POST", "/api/v1/api-keys", map[string]any{"name": k.name}), http.StatusCreated, &key)
		e.must(e.do("POST", "/api/v1/role-bindings", map[string]any{"role": k.role, "space": "team", "api_key": k.name}), http.StatusCreated, nil)
		r := e.send(request{method: "GET", path: "/api/v1/runs/" + rn.ID + "/plan", token: key.Token})
		if r.status != http.StatusOK {
			t.Fatalf("%s: %v", k.name, r)
		}
		body := string(r.body)
		switch k.name {
		case "reader":
			if strings.Contains(body, "Sup3rS3cret") || strings.Contains(body, "unmarked-state-value") || strings.Contains(body, "prior_state") ||
				!strings.Contains(body, tofu.Sensitive) || r.header.Get("Gantry-Plan-Redacted") != "true" {
				t.Errorf("reader got %s (redacted: %q), want the sensitive values and the prior state gone", body, r.header.Get("Gantry-Plan-Redacted"))
			}
		case "writer": // space-writer holds stack:state-download
			if !strings.Contains(body, "new-Sup3rS3cret") || !strings.Contains(body, "unmarked-state-value") || r.header.Get("Gantry-Plan-Redacted") != "false" {
				t.Errorf("writer got %s (redacted: %q), want the whole plan", body, r.header.Get("Gantry-Plan-Redacted"))
			}
		}
	}
}
