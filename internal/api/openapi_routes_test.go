package api

import (
	"bytes"
	"go/ast"
	"go/parser"
	"go/token"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
)

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
		if strings.HasPrefix(path, "/api/worker/") || strings.HasPrefix(path, "/auth/") {
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
	outside := 0
	for _, r := range routes {
		if strings.Contains(r.pattern, " /auth/") {
			outside++ // the sign-in flow (docs/sso.md), not the JSON API
		}
	}
	if len(documented) != len(routes)-1-outside {
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
		// The credentials (read by authenticate, which the routes' wrapper
		// calls, and a long poll again when it ends) are the document's
		// security schemes, not parameters of one route.
		c.seen[methods["authenticate"]] = true
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
					add(p, call.Args[len(call.Args)-1])
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
	return ok && (sel.Sel.Name == "Handle" || sel.Sel.Name == "HandleFunc") && len(call.Args) >= 2
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
