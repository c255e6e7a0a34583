package api_test

import (
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/gantry-iac/gantry/internal/api"
	"github.com/gantry-iac/gantry/internal/run"
)

// The run types RunCreate lists are the ones POST /stacks/{id}/runs takes,
// and the others (TASK: its own route) are refused, so the document never
// promises a run the server turns down.
func TestOpenAPIRunCreateTypesAreAccepted(t *testing.T) {
	type schema struct {
		Enum       []string          `json:"enum"`
		Ref        string            `json:"$ref"`
		AllOf      []schema          `json:"allOf"`
		Properties map[string]schema `json:"properties"`
	}
	var doc struct {
		Components struct {
			Schemas map[string]schema `json:"schemas"`
		} `json:"components"`
	}
	if err := json.Unmarshal(api.OpenAPI(), &doc); err != nil {
		t.Fatal(err)
	}
	typ := doc.Components.Schemas["RunCreate"].Properties["type"]
	if len(typ.AllOf) == 1 {
		typ = typ.AllOf[0]
	}
	if name, ok := strings.CutPrefix(typ.Ref, "#/components/schemas/"); ok {
		typ = doc.Components.Schemas[name]
	}
	enum := typ.Enum
	if len(enum) == 0 {
		t.Fatal("RunCreate.type lists no run types")
	}
	e := newAPIEnv(t)
	e.createStack("web", nil)
	for _, typ := range run.Types {
		r := e.do("POST", "/api/v1/stacks/web/runs", map[string]any{"type": typ})
		if slices.Contains(enum, typ) {
			if r.status != http.StatusCreated {
				t.Errorf("RunCreate.type lists %s, but the server answers %s", typ, r)
			}
			continue
		}
		if r.status != http.StatusBadRequest {
			t.Errorf("RunCreate.type does not list %s, but the server answers %s", typ, r)
		}
	}
	// A command is a task's: the tasks route takes it, the runs route points there.
	d := wantError(t, e.do("POST", "/api/v1/stacks/web/runs", map[string]any{"command": "ls"}), http.StatusBadRequest, "invalid")
	if want := "POST /api/v1/stacks/{id}/tasks"; !strings.Contains(d.Message, want) {
		t.Errorf("message %q, want it to name %s", d.Message, want)
	}
	e.must(e.do("POST", "/api/v1/stacks/web/tasks", map[string]any{"command": "ls"}), http.StatusCreated, nil)
}
