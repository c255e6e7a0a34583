package api

import (
	"encoding/json"
	"net/http"
	"reflect"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/gantry-iac/gantry/internal/apiv1"
	"github.com/gantry-iac/gantry/internal/httpx"
)

// These tests keep openapi.json true to the code: every route is documented
// and every documented operation is routed, with the query parameters its
// handler reads; every apiv1 type has a schema with exactly its JSON fields;
// the enums match the constants.

const schemaRef = "#/components/schemas/"

// oasMethods are the HTTP methods OpenAPI path items can hold.
var oasMethods = []string{"get", "put", "post", "delete", "options", "head", "patch", "trace"}

// goSchemas names the Go type each component schema describes.
var goSchemas = map[string]reflect.Type{
	"ErrorBody":        reflect.TypeFor[apiv1.ErrorBody](),
	"ErrorDetail":      reflect.TypeFor[apiv1.ErrorDetail](),
	"Space":            reflect.TypeFor[apiv1.Space](),
	"SpaceCreate":      reflect.TypeFor[apiv1.SpaceCreate](),
	"SpaceUpdate":      reflect.TypeFor[apiv1.SpaceUpdate](),
	"Hooks":            reflect.TypeFor[apiv1.Hooks](),
	"Stack":            reflect.TypeFor[apiv1.Stack](),
	"StackCreate":      reflect.TypeFor[apiv1.StackCreate](),
	"StackUpdate":      reflect.TypeFor[apiv1.StackUpdate](),
	"EnvVar":           reflect.TypeFor[apiv1.EnvVar](),
	"EnvVarSet":        reflect.TypeFor[apiv1.EnvVarSet](),
	"Delta":            reflect.TypeFor[apiv1.Delta](),
	"Transition":       reflect.TypeFor[apiv1.Transition](),
	"Run":              reflect.TypeFor[apiv1.Run](),
	"RunCreate":        reflect.TypeFor[apiv1.RunCreate](),
	"LogChunk":         reflect.TypeFor[apiv1.LogChunk](),
	"StateVersion":     reflect.TypeFor[apiv1.StateVersion](),
	"StateRollback":    reflect.TypeFor[apiv1.StateRollback](),
	"Output":           reflect.TypeFor[apiv1.Output](),
	"Lock":             reflect.TypeFor[apiv1.Lock](),
	"SpaceList":        reflect.TypeFor[apiv1.List[apiv1.Space]](),
	"StackList":        reflect.TypeFor[apiv1.List[apiv1.Stack]](),
	"RunList":          reflect.TypeFor[apiv1.List[apiv1.Run]](),
	"EnvVarList":       reflect.TypeFor[apiv1.List[apiv1.EnvVar]](),
	"StateVersionList": reflect.TypeFor[apiv1.List[apiv1.StateVersion]](),
	"OutputList":       reflect.TypeFor[apiv1.List[apiv1.Output]](),
}

// otherSchemas are the component schemas that are no apiv1 struct, and why.
var otherSchemas = map[string]string{
	"Tool":          "enum, checked against the stack package's tools",
	"RunType":       "enum, checked against apiv1's Run* constants",
	"RunState":      "enum, checked against apiv1's State* constants",
	"LockConflict":  "the 423 body of the state backend, checked against state.LockInfo plus apiv1.ErrorBody",
	"StateDocument": "OpenTofu's state file format, stored as sent",
	"Unlock":        "the body of UNLOCK: Lock (state.LockInfo) with an optional ID, or no body (Terraform's force-unlock)",
}

// requestOnly are schemas of request bodies: their required fields are what
// the server insists on, not the fields a response always carries. Lock is
// the body of LOCK and UNLOCK, of which only ID is needed.
var requestOnly = map[string]bool{
	"SpaceCreate": true, "SpaceUpdate": true, "StackCreate": true, "StackUpdate": true,
	"EnvVarSet": true, "RunCreate": true, "StateRollback": true, "Lock": true,
}

// strictBodies are decoded with httpx.DecodeJSON, which refuses unknown
// fields (Hooks inside the stack bodies too).
var strictBodies = []string{"SpaceCreate", "SpaceUpdate", "StackCreate", "StackUpdate", "EnvVarSet", "RunCreate", "StateRollback", "Hooks"}

func loadOpenAPI(t *testing.T) map[string]any {
	t.Helper()
	var doc map[string]any
	if err := json.Unmarshal(OpenAPI(), &doc); err != nil {
		t.Fatalf("openapi.json is not valid JSON: %v", err)
	}
	return doc
}

// resolve follows a local JSON pointer ("#/a/b") in doc.
func resolve(doc any, ref string) (any, bool) {
	if !strings.HasPrefix(ref, "#/") {
		return nil, false
	}
	cur := doc
	for _, tok := range strings.Split(ref[2:], "/") {
		tok = strings.ReplaceAll(strings.ReplaceAll(tok, "~1", "/"), "~0", "~")
		switch c := cur.(type) {
		case map[string]any:
			v, ok := c[tok]
			if !ok {
				return nil, false
			}
			cur = v
		case []any:
			i, err := strconv.Atoi(tok)
			if err != nil || i < 0 || i >= len(c) {
				return nil, false
			}
			cur = c[i]
		default:
			return nil, false
		}
	}
	return cur, true
}

// deref returns the object v is, following $refs.
func deref(t *testing.T, doc map[string]any, v any) map[string]any {
	t.Helper()
	for range 10 {
		m, ok := v.(map[string]any)
		if !ok {
			t.Fatalf("expected an object, got %T", v)
		}
		ref, ok := m["$ref"].(string)
		if !ok {
			return m
		}
		if v, ok = resolve(doc, ref); !ok {
			t.Fatalf("unresolvable $ref %q", ref)
		}
	}
	t.Fatalf("$ref chain too long")
	return nil
}

func obj(v any) map[string]any { m, _ := v.(map[string]any); return m }

type operation struct {
	method string // upper case, e.g. GET or LOCK
	path   string
	op     map[string]any
	item   map[string]any
	ext    bool // documented in x-gantry-methods
}

func (o operation) String() string { return o.method + " " + o.path }

// operations lists the operations of doc, those of x-gantry-methods too.
func operations(doc map[string]any) []operation {
	var out []operation
	for path, v := range obj(doc["paths"]) {
		item := obj(v)
		for _, m := range oasMethods {
			if op := obj(item[m]); op != nil {
				out = append(out, operation{strings.ToUpper(m), path, op, item, false})
			}
		}
		for m, op := range obj(item["x-gantry-methods"]) {
			out = append(out, operation{m, path, obj(op), item, true})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].String() < out[j].String() })
	return out
}

// params returns the parameters of o (path-level ones overridden by the
// operation's) by "in:name".
func params(t *testing.T, doc map[string]any, o operation) map[string]map[string]any {
	t.Helper()
	out := map[string]map[string]any{}
	for _, list := range []any{o.item["parameters"], o.op["parameters"]} {
		l, _ := list.([]any)
		for _, p := range l {
			pm := deref(t, doc, p)
			out[pm["in"].(string)+":"+pm["name"].(string)] = pm
		}
	}
	return out
}

func namesIn(ps map[string]map[string]any, in string) []string {
	var out []string
	for k := range ps {
		if where, name, _ := strings.Cut(k, ":"); where == in {
			out = append(out, name)
		}
	}
	sort.Strings(out)
	return out
}

var pathParamRE = regexp.MustCompile(`\{([^}]+)\}`)

func TestOpenAPIDocument(t *testing.T) {
	doc := loadOpenAPI(t)
	if v, _ := doc["openapi"].(string); !regexp.MustCompile(`^3\.\d+\.\d+$`).MatchString(v) {
		t.Errorf("openapi = %q, want 3.x.y", v)
	}
	if info := obj(doc["info"]); info["title"] == nil || info["version"] == nil {
		t.Errorf("info needs a title and a version")
	}
	if len(obj(doc["paths"])) == 0 {
		t.Fatalf("no paths")
	}
	checkRefs(t, doc, "#", doc)
	opIDs := map[string]string{}
	for _, o := range operations(doc) {
		id, _ := o.op["operationId"].(string)
		if prev, dup := opIDs[id]; id == "" || dup {
			t.Errorf("%s: operationId %q is empty or already used by %s", o, id, prev)
		}
		opIDs[id] = o.String()
		checkOperation(t, doc, o)
	}
}

// checkRefs checks that every $ref in v resolves in doc and stands alone
// (OpenAPI 3.0 ignores the siblings of a $ref).
func checkRefs(t *testing.T, doc map[string]any, where string, v any) {
	t.Helper()
	switch v := v.(type) {
	case map[string]any:
		if ref, ok := v["$ref"]; ok {
			s, _ := ref.(string)
			if _, ok := resolve(doc, s); !ok {
				t.Errorf("%s: $ref %q does not resolve", where, ref)
			}
			if len(v) != 1 {
				t.Errorf("%s: $ref %q has siblings, which OpenAPI 3.0 ignores (wrap it in allOf)", where, ref)
			}
		}
		for k, e := range v {
			checkRefs(t, doc, where+"/"+k, e)
		}
	case []any:
		for i, e := range v {
			checkRefs(t, doc, where+"/"+strconv.Itoa(i), e)
		}
	}
}

// checkOperation checks the parameters, security and responses of o.
func checkOperation(t *testing.T, doc map[string]any, o operation) {
	t.Helper()
	if !strings.HasPrefix(o.path, "/api/v1/") {
		t.Errorf("%s: only /api/v1 routes belong in this document", o)
	}
	if o.op["summary"] == nil || o.op["description"] == nil {
		t.Errorf("%s: needs a summary and a description", o)
	}
	if o.ext && slices.Contains(oasMethods, strings.ToLower(o.method)) {
		t.Errorf("%s: a standard method belongs in the path item, not in x-gantry-methods", o)
	}
	ps := params(t, doc, o)
	var inTemplate []string
	for _, m := range pathParamRE.FindAllStringSubmatch(o.path, -1) {
		inTemplate = append(inTemplate, m[1])
	}
	sort.Strings(inTemplate)
	if got := namesIn(ps, "path"); !slices.Equal(got, inTemplate) {
		t.Errorf("%s: path parameters %v, template has %v", o, got, inTemplate)
	}
	for k, p := range ps {
		if strings.HasPrefix(k, "path:") && p["required"] != true {
			t.Errorf("%s: path parameter %s must be required", o, k)
		}
	}

	// Security schemes exist; authenticated operations document 401 and 403.
	security, ok := o.op["security"].([]any)
	if !ok {
		security, _ = doc["security"].([]any)
	}
	for _, req := range security {
		for name := range obj(req) {
			if obj(obj(doc["components"])["securitySchemes"])[name] == nil {
				t.Errorf("%s: unknown security scheme %q", o, name)
			}
		}
	}
	responses := obj(o.op["responses"])
	if len(security) > 0 && (responses["401"] == nil || responses["403"] == nil) {
		t.Errorf("%s: authenticated operations answer 401 and 403", o)
	}

	// A success, and errors in the envelope with a status of httpx's table.
	errorStatuses := map[int]bool{}
	for _, s := range httpx.Status {
		errorStatuses[s] = true
	}
	success := false
	for code, r := range responses {
		status, err := strconv.Atoi(code)
		resp := deref(t, doc, r)
		switch {
		case err != nil:
			t.Errorf("%s: response %q is not a status code", o, code)
			continue
		case resp["description"] == nil:
			t.Errorf("%s %s: response needs a description", o, code)
		}
		if status < 400 {
			success = success || status < 300
			continue
		}
		if !errorStatuses[status] {
			t.Errorf("%s: error status %d is not in httpx.Status", o, status)
		}
		ref, _ := obj(obj(obj(resp["content"])["application/json"])["schema"])["$ref"].(string)
		if ref != schemaRef+"ErrorBody" && !(status == http.StatusLocked && ref == schemaRef+"LockConflict") {
			t.Errorf("%s %s: error responses are application/json ErrorBody, got %q", o, code, ref)
		}
	}
	if !success {
		t.Errorf("%s: no 2xx response", o)
	}
}
