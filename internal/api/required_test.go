package api_test

import (
	"encoding/json"
	"net/http"
	"sort"
	"strings"
	"testing"

	"github.com/gantry-iac/gantry/internal/api"
)

// requiredBodies lists the operations of openapi.json whose JSON request
// body has required fields, with those fields.
func requiredBodies(t *testing.T) map[string][]string {
	t.Helper()
	type schema struct {
		Ref      string   `json:"$ref"`
		Required []string `json:"required"`
	}
	type op struct {
		RequestBody *struct {
			Content map[string]struct {
				Schema schema `json:"schema"`
			} `json:"content"`
		} `json:"requestBody"`
	}
	var doc struct {
		Paths      map[string]map[string]json.RawMessage `json:"paths"`
		Components struct {
			Schemas map[string]schema `json:"schemas"`
		} `json:"components"`
	}
	if err := json.Unmarshal(api.OpenAPI(), &doc); err != nil {
		t.Fatal(err)
	}
	out := map[string][]string{}
	add := func(method, path string, raw json.RawMessage) {
		var o op
		if json.Unmarshal(raw, &o) != nil || o.RequestBody == nil {
			return
		}
		s := o.RequestBody.Content["application/json"].Schema
		if name, ok := strings.CutPrefix(s.Ref, "#/components/schemas/"); ok {
			s = doc.Components.Schemas[name]
		}
		if len(s.Required) > 0 {
			out[strings.ToUpper(method)+" "+path] = s.Required
		}
	}
	for path, item := range doc.Paths {
		for method, raw := range item {
			switch method {
			case "x-gantry-methods":
				var ext map[string]json.RawMessage
				_ = json.Unmarshal(raw, &ext)
				for m, r := range ext {
					add(m, path, r)
				}
			case "get", "put", "post", "delete", "patch":
				add(method, path, raw)
			}
		}
	}
	return out
}

// TestRequiredBodyFields sends {} to every operation whose request body has
// required fields, on objects that exist: each answers 400 naming every
// field the document requires, and changes nothing.
func TestRequiredBodyFields(t *testing.T) {
	e := newRBACEnv(t)
	f := e.fixture(0)
	ops := requiredBodies(t)
	if len(ops) < 20 {
		t.Fatalf("found %d operations with required body fields, want them all", len(ops))
	}
	patterns := make([]string, 0, len(ops))
	for p := range ops {
		patterns = append(patterns, p)
	}
	sort.Strings(patterns)
	for _, pattern := range patterns {
		t.Run(pattern, func(t *testing.T) {
			method, path, _ := matrixCall(pattern, f)
			path, _, _ = strings.Cut(path, "?")
			for _, body := range []string{`{}`, `{"` + ops[pattern][0] + `":null}`} {
				r := e.send(request{method: method, path: path, token: e.token, basic: strings.HasSuffix(path, "/tfstate"),
					contentType: "application/json", body: strings.NewReader(body)})
				d := wantError(t, r, http.StatusBadRequest, "invalid")
				for _, field := range ops[pattern] {
					if !strings.Contains(d.Message, field) {
						t.Errorf("%s: message %q does not name the required field %q", body, d.Message, field)
					}
				}
			}
		})
	}
	// An explicit empty value is a value; a null one is none.
	e.must(e.do("PUT", "/api/v1/contexts/"+f.context+"/env/EMPTY", map[string]any{"value": ""}), http.StatusOK, nil)
	d := wantError(t, e.do("PUT", "/api/v1/contexts/"+f.context+"/files", map[string]any{"path": "fz", "content": nil}), http.StatusBadRequest, "invalid")
	if d.Message != "content is required" {
		t.Errorf("file without content: %q", d.Message)
	}
	var files struct{ Items []any }
	e.must(e.do("GET", "/api/v1/contexts/"+f.context+"/files", nil), http.StatusOK, &files)
	if len(files.Items) != 0 {
		t.Errorf("files after the refused requests: %v", files.Items)
	}
}

// TestBadTimesNamed: a time that is not RFC 3339 is refused naming its
// field and the format (not Go's reference layout).
func TestBadTimesNamed(t *testing.T) {
	e := newRBACEnv(t)
	f := e.fixture(0)
	for _, tt := range []struct {
		path string
		body map[string]any
		want string
	}{
		{"/api/v1/api-keys", map[string]any{"name": "k", "expires_at": "tomorrow"}, `expires_at: "tomorrow" is not an RFC 3339 time such as 2026-12-01T00:00:00Z`},
		{"/api/v1/stacks/" + f.stack + "/schedules", map[string]any{"kind": "delete", "at": "tomorrow"}, `at: "tomorrow" is not an RFC 3339 time such as 2026-12-01T00:00:00Z`},
	} {
		d := wantError(t, e.do("POST", tt.path, tt.body), http.StatusBadRequest, "invalid")
		if d.Message != tt.want {
			t.Errorf("%s: message %q, want %q", tt.path, d.Message, tt.want)
		}
	}
}

// A scheduled delete in the past is refused (it would destroy at once).
func TestScheduledDeleteInThePast(t *testing.T) {
	e := newRBACEnv(t)
	f := e.fixture(0)
	d := wantError(t, e.do("POST", "/api/v1/stacks/"+f.stack+"/schedules", map[string]any{"kind": "delete", "at": "2020-01-01T00:00:00Z"}),
		http.StatusBadRequest, "invalid")
	if !strings.HasPrefix(d.Message, "a scheduled delete needs a time in the future: 2020-01-01T00:00:00Z is in the past (the server's time is ") {
		t.Errorf("message %q", d.Message)
	}
}
