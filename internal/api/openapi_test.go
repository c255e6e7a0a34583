package api

import (
	"bytes"
	"encoding/json"
	"go/ast"
	"go/parser"
	"go/token"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gantry-iac/gantry/internal/apiv1"
	"github.com/gantry-iac/gantry/internal/httpx"
	"github.com/gantry-iac/gantry/internal/stack"
	"github.com/gantry-iac/gantry/internal/state"
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

// testMux registers the routes on a mux; handlers are never called, so the
// services can be nil.
func testMux() *http.ServeMux {
	mux := http.NewServeMux()
	(&API{}).Routes(mux)
	return mux
}

// patternOf returns the pattern mux routes method and path template to.
func patternOf(t *testing.T, mux *http.ServeMux, method, path string) string {
	t.Helper()
	url := pathParamRE.ReplaceAllStringFunc(path, func(string) string { return "1" })
	_, pattern := mux.Handler(httptest.NewRequest(method, url, nil))
	return pattern
}

func TestOpenAPIRoutes(t *testing.T) {
	doc := loadOpenAPI(t)
	mux := testMux()
	if got := patternOf(t, mux, "GET", "/api/v1/no-such-route"); got != "/api/v1/" {
		t.Fatalf("unknown routes reach %q, want the /api/v1/ catch-all", got)
	}

	// Every documented operation is routed to its own pattern, not the catch-all.
	documented := map[string]operation{}
	for _, o := range operations(doc) {
		documented[o.String()] = o
		if got := patternOf(t, mux, o.method, o.path); got != o.String() {
			t.Errorf("%s is documented but the mux routes it to %q", o, got)
		}
	}

	// Every route registered in the source is documented, with the query and
	// header parameters its handler reads.
	routes := sourceRoutes(t)
	if len(routes) == 0 {
		t.Fatalf("found no route registrations in the source")
	}
	for _, r := range routes {
		method, path, ok := strings.Cut(r.pattern, " ")
		if !ok {
			if r.pattern != "/api/v1/" {
				t.Errorf("route %q has no method; only the /api/v1/ catch-all may", r.pattern)
			}
			continue
		}
		if strings.HasPrefix(path, "/api/worker/") {
			continue
		}
		if got := patternOf(t, mux, method, path); got != r.pattern {
			t.Errorf("source registers %q but the mux routes it to %q (test out of date?)", r.pattern, got)
		}
		o, ok := documented[r.pattern]
		if !ok {
			t.Errorf("route %q is not documented in openapi.json (non-standard methods go in the path's x-gantry-methods)", r.pattern)
			continue
		}
		ps := params(t, doc, o)
		if got, want := namesIn(ps, "query"), keys(r.queries); !slices.Equal(got, want) {
			t.Errorf("%s: documented query parameters %v, the handler reads %v", o, got, want)
		}
		if got, want := namesIn(ps, "header"), keys(r.headers); !slices.Equal(got, want) {
			t.Errorf("%s: documented header parameters %v, the handler reads %v", o, got, want)
		}
	}
	if len(documented) != len(routes)-1 {
		t.Errorf("%d operations documented, %d routes registered besides the catch-all", len(documented), len(routes)-1)
	}

	// The document is served, without authentication.
	rec := httptest.NewRecorder()
	mux.ServeHTTP(rec, httptest.NewRequest("GET", "/api/v1/openapi.json", nil))
	if rec.Code != http.StatusOK || !strings.HasPrefix(rec.Header().Get("Content-Type"), "application/json") || !bytes.Equal(rec.Body.Bytes(), OpenAPI()) {
		t.Errorf("GET /api/v1/openapi.json = %d %q, want 200 application/json with the document", rec.Code, rec.Header().Get("Content-Type"))
	}
}

type sourceRoute struct {
	pattern          string
	queries, headers map[string]bool
}

// sourceRoutes reads the route registrations of this package's source: calls
// of mux.Handle with a literal pattern, and calls of local registrar funcs
// (`user := func(pattern string, ...) { mux.Handle(pattern, ...) }`, or
// `h := func(method ...) { mux.Handle(method+" /path", ...) }`) with a
// literal argument. The last argument of a registration is its handler, read
// with the functions it uses for the query and header parameters it reads.
func sourceRoutes(t *testing.T) []sourceRoute {
	t.Helper()
	fset := token.NewFileSet()
	decls, funcs, methods := parseFuncs(t, fset)
	var out []sourceRoute
	add := func(pattern string, handler ast.Expr) {
		c := &paramCollector{funcs: funcs, methods: methods, seen: map[*ast.FuncDecl]bool{},
			queryVars: map[string]bool{}, queries: map[string]bool{}, headers: map[string]bool{}}
		c.walk(handler)
		out = append(out, sourceRoute{pattern, c.queries, c.headers})
	}
	for _, fd := range decls {
		regs, inRegistrar := registrars(fd)
		ast.Inspect(fd.Body, func(n ast.Node) bool {
			call, ok := n.(*ast.CallExpr)
			if !ok {
				return true
			}
			if isHandle(call) && !inRegistrar[call] {
				if p, ok := stringLit(call.Args[0]); ok {
					add(p, call.Args[1])
				} else {
					t.Errorf("%s: a route registration this test cannot read; teach sourceRoutes", fset.Position(call.Pos()))
				}
				return true
			}
			if id, ok := call.Fun.(*ast.Ident); ok {
				if reg, ok := regs[id.Name]; ok {
					if p, ok := stringLit(call.Args[reg.arg]); ok {
						add(p+reg.suffix, call.Args[len(call.Args)-1])
					} else {
						t.Errorf("%s: %s called without a literal pattern", fset.Position(call.Pos()), id.Name)
					}
				}
			}
			return true
		})
	}
	return out
}

// parseFuncs parses the package's non-test files and returns its function
// declarations, and its functions and methods by name.
func parseFuncs(t *testing.T, fset *token.FileSet) (decls []*ast.FuncDecl, funcs, methods map[string]*ast.FuncDecl) {
	t.Helper()
	names, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	funcs, methods = map[string]*ast.FuncDecl{}, map[string]*ast.FuncDecl{}
	for _, name := range names {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, name, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range f.Decls {
			if fd, ok := d.(*ast.FuncDecl); ok && fd.Body != nil {
				decls = append(decls, fd)
				if fd.Recv == nil {
					funcs[fd.Name.Name] = fd
				} else {
					methods[fd.Name.Name] = fd
				}
			}
		}
	}
	return decls, funcs, methods
}

// registrar is a local func that registers a route: its argument arg, plus
// suffix, is the pattern.
type registrar struct {
	arg    int
	suffix string
}

// registrars finds the registrars fd declares (`name := func(...) {...}`
// calling mux.Handle with one of its parameters, or a parameter plus a
// literal), and the mux.Handle calls inside them.
func registrars(fd *ast.FuncDecl) (map[string]registrar, map[*ast.CallExpr]bool) {
	regs, inRegistrar := map[string]registrar{}, map[*ast.CallExpr]bool{}
	ast.Inspect(fd.Body, func(n ast.Node) bool {
		as, ok := n.(*ast.AssignStmt)
		if !ok || len(as.Lhs) != 1 || len(as.Rhs) != 1 {
			return true
		}
		id, ok1 := as.Lhs[0].(*ast.Ident)
		fl, ok2 := as.Rhs[0].(*ast.FuncLit)
		if !ok1 || !ok2 {
			return true
		}
		var params []string
		for _, f := range fl.Type.Params.List {
			for _, n := range f.Names {
				params = append(params, n.Name)
			}
		}
		ast.Inspect(fl.Body, func(n ast.Node) bool {
			call, ok := n.(*ast.CallExpr)
			if !ok || !isHandle(call) {
				return true
			}
			arg, suffix := call.Args[0], ""
			if b, ok := arg.(*ast.BinaryExpr); ok && b.Op == token.ADD {
				if s, ok := stringLit(b.Y); ok {
					arg, suffix = b.X, s
				}
			}
			if p, ok := arg.(*ast.Ident); ok && slices.Contains(params, p.Name) {
				regs[id.Name] = registrar{slices.Index(params, p.Name), suffix}
				inRegistrar[call] = true
			}
			return true
		})
		return true
	})
	return regs, inRegistrar
}

func isHandle(call *ast.CallExpr) bool {
	sel, ok := call.Fun.(*ast.SelectorExpr)
	return ok && (sel.Sel.Name == "Handle" || sel.Sel.Name == "HandleFunc") && len(call.Args) == 2
}

func stringLit(e ast.Expr) (string, bool) {
	lit, ok := e.(*ast.BasicLit)
	if !ok || lit.Kind != token.STRING {
		return "", false
	}
	s, err := strconv.Unquote(lit.Value)
	return s, err == nil
}

// paramCollector finds the query parameters (r.URL.Query().Get("x"),
// q.Get("x"), q["x"] with q := r.URL.Query()) and request headers
// (r.Header.Get("x")) code reads, following the package's functions and
// methods it refers to.
type paramCollector struct {
	funcs, methods   map[string]*ast.FuncDecl
	seen             map[*ast.FuncDecl]bool
	queryVars        map[string]bool
	queries, headers map[string]bool
}

func (c *paramCollector) follow(fd *ast.FuncDecl) {
	if fd != nil && !c.seen[fd] {
		c.seen[fd] = true
		c.walk(fd.Body)
	}
}

func isQueryCall(e ast.Expr) bool {
	call, ok := e.(*ast.CallExpr)
	if !ok {
		return false
	}
	sel, ok := call.Fun.(*ast.SelectorExpr)
	if !ok || sel.Sel.Name != "Query" {
		return false
	}
	url, ok := sel.X.(*ast.SelectorExpr)
	return ok && url.Sel.Name == "URL"
}

func (c *paramCollector) isQuery(e ast.Expr) bool {
	if id, ok := e.(*ast.Ident); ok {
		return c.queryVars[id.Name]
	}
	return isQueryCall(e)
}

func (c *paramCollector) walk(n ast.Node) {
	ast.Inspect(n, func(n ast.Node) bool {
		switch n := n.(type) {
		case *ast.Ident:
			c.follow(c.funcs[n.Name])
		case *ast.SelectorExpr:
			if _, ok := n.X.(*ast.Ident); ok {
				c.follow(c.methods[n.Sel.Name])
			}
		case *ast.AssignStmt:
			for i, rhs := range n.Rhs {
				if i >= len(n.Lhs) || !isQueryCall(rhs) {
					continue
				}
				if id, ok := n.Lhs[i].(*ast.Ident); ok {
					c.queryVars[id.Name] = true
				}
			}
		case *ast.IndexExpr:
			if s, ok := stringLit(n.Index); ok && c.isQuery(n.X) {
				c.queries[s] = true
			}
		case *ast.CallExpr:
			sel, ok := n.Fun.(*ast.SelectorExpr)
			if !ok || sel.Sel.Name != "Get" || len(n.Args) != 1 {
				return true
			}
			s, ok := stringLit(n.Args[0])
			if !ok {
				return true
			}
			if c.isQuery(sel.X) {
				c.queries[s] = true
			} else if h, ok := sel.X.(*ast.SelectorExpr); ok && h.Sel.Name == "Header" {
				c.headers[s] = true
			}
		}
		return true
	})
}

type jsonField struct {
	typ       reflect.Type
	omitempty bool
}

// jsonFields returns the JSON object fields encoding/json uses for t.
func jsonFields(t reflect.Type) map[string]jsonField {
	out := map[string]jsonField{}
	for i := range t.NumField() {
		f := t.Field(i)
		tag := f.Tag.Get("json")
		if tag == "-" {
			continue
		}
		name, opts, _ := strings.Cut(tag, ",")
		if f.Anonymous && name == "" && f.Type.Kind() == reflect.Struct {
			for k, v := range jsonFields(f.Type) {
				out[k] = v
			}
			continue
		}
		if !f.IsExported() {
			continue
		}
		if name == "" {
			name = f.Name
		}
		out[name] = jsonField{f.Type, slices.Contains(strings.Split(opts, ","), "omitempty")}
	}
	return out
}

func keys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func stringSet(v any) []string {
	l, _ := v.([]any)
	var out []string
	for _, e := range l {
		s, _ := e.(string)
		out = append(out, s)
	}
	sort.Strings(out)
	return out
}

// checkType checks that schema s describes values of Go type typ.
func checkType(t *testing.T, doc map[string]any, where string, s map[string]any, typ reflect.Type) {
	t.Helper()
	if all, ok := s["allOf"].([]any); ok && len(all) == 1 {
		s = obj(all[0])
	}
	for typ.Kind() == reflect.Pointer {
		typ = typ.Elem()
	}
	ref, _ := s["$ref"].(string)
	switch {
	case typ == reflect.TypeFor[time.Time]():
		if s["type"] != "string" || s["format"] != "date-time" {
			t.Errorf("%s: a time is a string with format date-time", where)
		}
		return
	case typ.Kind() == reflect.Struct:
		if ref != schemaRef+typ.Name() {
			t.Errorf("%s: want $ref %s%s, got %q", where, schemaRef, typ.Name(), ref)
		}
		return
	case typ.Kind() == reflect.Interface:
		if ref != "" || s["type"] != nil {
			t.Errorf("%s: holds any JSON value, so it must not have a type", where)
		}
		return
	}
	if ref != "" {
		s = deref(t, doc, s)
	}
	var want string
	switch typ.Kind() {
	case reflect.String:
		want = "string"
	case reflect.Bool:
		want = "boolean"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		want = "integer"
		if typ.Kind() == reflect.Int64 && s["format"] != "int64" {
			t.Errorf("%s: an int64 has format int64", where)
		}
	case reflect.Slice, reflect.Array:
		want = "array"
		if items := obj(s["items"]); items != nil {
			checkType(t, doc, where+"[]", items, typ.Elem())
		} else {
			t.Errorf("%s: an array needs items", where)
		}
	case reflect.Map:
		want = "object"
	default:
		t.Errorf("%s: the test does not know Go kind %s", where, typ.Kind())
		return
	}
	if s["type"] != want {
		t.Errorf("%s: type %v, want %s for Go %s", where, s["type"], want, typ)
	}
}

// checkFields compares the properties of schema s with JSON fields.
func checkFields(t *testing.T, doc map[string]any, name string, s map[string]any, fields map[string]jsonField) {
	t.Helper()
	props := obj(s["properties"])
	if got, want := keys(props), keys(fields); !slices.Equal(got, want) {
		t.Errorf("schema %s has properties %v, the Go type has JSON fields %v", name, got, want)
	}
	for f, jf := range fields {
		if p := obj(props[f]); p != nil {
			checkType(t, doc, name+"."+f, p, jf.typ)
		}
	}
	required := stringSet(s["required"])
	for _, r := range required {
		if _, ok := fields[r]; !ok {
			t.Errorf("schema %s requires %q, which is no field", name, r)
		}
	}
	if !requestOnly[name] {
		// Responses always carry the fields without omitempty, and only those.
		var always []string
		for f, jf := range fields {
			if !jf.omitempty {
				always = append(always, f)
			}
		}
		sort.Strings(always)
		if !slices.Equal(required, always) {
			t.Errorf("schema %s requires %v, but the fields always present are %v", name, required, always)
		}
	}
}

func TestOpenAPISchemasMatchTypes(t *testing.T) {
	doc := loadOpenAPI(t)
	schemas := obj(obj(doc["components"])["schemas"])
	for name := range schemas {
		_, isGo := goSchemas[name]
		if _, other := otherSchemas[name]; isGo == other {
			t.Errorf("schema %s must be in exactly one of goSchemas and otherSchemas", name)
		}
	}
	for name, typ := range goSchemas {
		s := obj(schemas[name])
		if s == nil {
			t.Errorf("no schema %s for %s", name, typ)
			continue
		}
		if s["type"] != "object" {
			t.Errorf("schema %s: type %v, want object", name, s["type"])
		}
		checkFields(t, doc, name, s, jsonFields(typ))
	}
	for name := range otherSchemas {
		if schemas[name] == nil {
			t.Errorf("no schema %s", name)
		}
	}
	for _, name := range strictBodies {
		if ap, ok := obj(schemas[name])["additionalProperties"]; !ok || ap != false {
			t.Errorf("schema %s: the server refuses unknown fields, so additionalProperties must be false", name)
		}
	}

	// Every struct of apiv1 has its schema.
	structs, _ := apiv1Source(t)
	for _, name := range structs {
		if name == "List" {
			continue // generic: the *List schemas
		}
		if _, ok := goSchemas[name]; !ok {
			t.Errorf("apiv1.%s has no schema in openapi.json (add it and to goSchemas)", name)
		}
	}

	// The body of LOCK/UNLOCK is read as state.LockInfo; a 423 of the state
	// backend is the holder's LockInfo plus the error envelope.
	checkFields(t, doc, "Lock", obj(schemas["Lock"]), jsonFields(reflect.TypeFor[state.LockInfo]()))
	conflict := map[string]jsonField{}
	for _, typ := range []reflect.Type{reflect.TypeFor[state.LockInfo](), reflect.TypeFor[apiv1.ErrorBody]()} {
		for k, v := range jsonFields(typ) {
			conflict[k] = v
		}
	}
	var union []string
	parts, _ := obj(schemas["LockConflict"])["allOf"].([]any)
	for _, part := range parts {
		union = append(union, keys(obj(deref(t, doc, part)["properties"]))...)
	}
	sort.Strings(union)
	if want := keys(conflict); !slices.Equal(union, want) {
		t.Errorf("LockConflict has properties %v, lockAware writes %v", union, want)
	}
}

func TestOpenAPIEnums(t *testing.T) {
	schemas := obj(obj(loadOpenAPI(t)["components"])["schemas"])
	_, consts := apiv1Source(t)
	enum := func(s map[string]any) []string { return stringSet(s["enum"]) }
	var runTypes, runStates []string
	for name, v := range consts {
		switch {
		case strings.HasPrefix(name, "Run"):
			runTypes = append(runTypes, v)
		case strings.HasPrefix(name, "State"):
			runStates = append(runStates, v)
		}
	}
	sort.Strings(runTypes)
	sort.Strings(runStates)
	if got := enum(obj(schemas["RunType"])); len(runTypes) == 0 || !slices.Equal(got, runTypes) {
		t.Errorf("RunType enum %v, apiv1 run types %v", got, runTypes)
	}
	if got := enum(obj(schemas["RunState"])); len(runStates) == 0 || !slices.Equal(got, runStates) {
		t.Errorf("RunState enum %v, apiv1 run states %v", got, runStates)
	}
	stackStates := append(slices.Clone(runStates), "NONE")
	sort.Strings(stackStates)
	if got := enum(obj(obj(obj(schemas["Stack"])["properties"])["state"])); !slices.Equal(got, stackStates) {
		t.Errorf("Stack.state enum %v, want the run states and NONE %v", got, stackStates)
	}
	tools := []string{stack.OpenTofu, stack.Terraform}
	sort.Strings(tools)
	if got := enum(obj(schemas["Tool"])); !slices.Equal(got, tools) {
		t.Errorf("Tool enum %v, want %v", got, tools)
	}
	var kinds []string
	for k := range httpx.Status {
		kinds = append(kinds, string(k))
	}
	sort.Strings(kinds)
	if got := enum(obj(obj(obj(schemas["ErrorDetail"])["properties"])["code"])); !slices.Equal(got, kinds) {
		t.Errorf("ErrorDetail.code enum %v, httpx.Status has kinds %v", got, kinds)
	}
}

// apiv1Source returns the exported struct types of package apiv1 and its
// exported string constants by name.
func apiv1Source(t *testing.T) (structs []string, consts map[string]string) {
	t.Helper()
	names, err := filepath.Glob("../apiv1/*.go")
	if err != nil || len(names) == 0 {
		t.Fatalf("apiv1 sources: %v", err)
	}
	consts = map[string]string{}
	fset := token.NewFileSet()
	for _, name := range names {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, name, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range f.Decls {
			gd, ok := d.(*ast.GenDecl)
			if !ok {
				continue
			}
			for _, spec := range gd.Specs {
				switch s := spec.(type) {
				case *ast.TypeSpec:
					if _, ok := s.Type.(*ast.StructType); ok && s.Name.IsExported() {
						structs = append(structs, s.Name.Name)
					}
				case *ast.ValueSpec:
					if gd.Tok != token.CONST {
						continue
					}
					for i, n := range s.Names {
						if i < len(s.Values) && n.IsExported() {
							if v, ok := stringLit(s.Values[i]); ok {
								consts[n.Name] = v
							}
						}
					}
				}
			}
		}
	}
	return structs, consts
}
