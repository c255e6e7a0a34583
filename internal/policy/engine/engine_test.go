package engine_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/gantry-iac/gantry/internal/policy/engine"
)

func compileErr(t *testing.T, src engine.Source) *engine.CompileError {
	t.Helper()
	_, err := engine.Compile(src)
	var ce *engine.CompileError
	if !errors.As(err, &ce) {
		t.Fatalf("Compile(%s) = %v, want a *CompileError", src.Name, err)
	}
	return ce
}

func TestCompileRefuses(t *testing.T) {
	tests := []struct {
		name, typ, body string
		wantLine        int
		wantMsg         string
	}{
		{"syntax", engine.TypePlan, "package spacelift\n\ndeny contains \"x\" if {\n  input.a ==\n}\n", 5, "unexpected"},
		{"unsafe var", engine.TypePlan, "package spacelift\n\ndeny contains msg if {\n  x == 1\n  msg := \"a\"\n}\n", 4, "var x is unsafe"},
		{"type error", engine.TypePlan, "package spacelift\n\ndeny contains msg if {\n  msg := concat(\",\", 1)\n}\n", 4, "invalid argument"},
		{"wrong package", engine.TypePlan, "package foo\n\ndeny contains \"x\" if { true }\n", 1, "package spacelift"},
		{"boolean deny v1", engine.TypePlan, "package spacelift\n\ndeny if { true }\n", 3, "rule deny in a PLAN policy must be a set of strings"},
		{"boolean deny v0", engine.TypePlan, "package spacelift\n\ndeny { true }\n", 3, "must be a set of strings"},
		{"set approve", engine.TypeApproval, "package spacelift\n\napprove contains \"x\" if { true }\n", 3, "rule approve in a APPROVAL policy must be a boolean"},
		{"string reject", engine.TypeApproval, "package spacelift\n\nreject := \"no\"\n", 3, "must be a boolean"},
		{"boolean trigger", engine.TypeTrigger, "package spacelift\n\ntrigger if { true }\n", 3, "set of strings"},
		{"set track", engine.TypePush, "package spacelift\n\ntrack contains 1 if { true }\n", 3, "must be a boolean"},
		{"boolean webhook", engine.TypeNotification, "package spacelift\n\nwebhook if { true }\n", 3, "set of objects"},
		{"boolean teams", engine.TypeNotification, "package spacelift\n\nteams if { true }\n", 3, "rule teams in a NOTIFICATION policy must be a set of objects"},
		{"string email", engine.TypeNotification, "package spacelift\n\nemail := \"ops@example.com\"\n", 3, "rule email in a NOTIFICATION policy must be a set of objects"},
		{"set allow", engine.TypeLogin, "package spacelift\n\nallow contains 1 if { true }\n", 3, "must be a boolean"},
		{"boolean flag", engine.TypeLogin, "package spacelift\n\nflag if { true }\n", 3, "set of strings"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ce := compileErr(t, engine.Source{Name: "policy/p.rego", Type: tt.typ, Body: tt.body})
			d := ce.Errors[0]
			if d.File != "policy/p.rego" || d.Line != tt.wantLine || !strings.Contains(d.Message, tt.wantMsg) {
				t.Errorf("got %v, want policy/p.rego:%d: ...%s...", ce, tt.wantLine, tt.wantMsg)
			}
			if !strings.HasPrefix(ce.Error(), "policy/p.rego:") {
				t.Errorf("Error() = %q", ce.Error())
			}
		})
	}
}

func TestCompileDisabledBuiltins(t *testing.T) {
	calls := map[string]string{
		"http.send":               `http.send({"method": "GET", "url": "http://x"})`,
		"opa.runtime":             `opa.runtime()`,
		"rego.parse_module":       `rego.parse_module("a", "package a")`,
		"time.now_ns":             `time.now_ns()`,
		"net.lookup_ip_addr":      `net.lookup_ip_addr("example.com")`,
		"rand.intn":               `rand.intn("a", 3)`,
		"uuid.rfc4122":            `uuid.rfc4122("a")`,
		"json.match_schema":       `json.match_schema({}, {"$ref": "file:///etc/passwd"})`,
		"json.verify_schema":      `json.verify_schema({"$ref": "http://169.254.169.254/latest"})`,
		"strings.render_template": `strings.render_template("{{.a}}", {"a": 1})`,
		"net.cidr_expand":         `net.cidr_expand("::/0")`,
		"io.jwt.decode_verify":    `io.jwt.decode_verify("a.b.c", {"secret": "s"})`,
		"io.jwt.encode_sign":      `io.jwt.encode_sign({"alg": "ES256"}, {}, {})`,
		"crypto.x509.parse_and_verify_certificates": `crypto.x509.parse_and_verify_certificates("x")`,
	}
	for name, call := range calls {
		t.Run(name, func(t *testing.T) {
			body := "package spacelift\n\ndeny contains sprintf(\"%v\", [x]) if {\n  x := " + call + "\n}\n"
			ce := compileErr(t, engine.Source{Name: "p.rego", Type: engine.TypePlan, Body: body})
			if len(ce.Errors) != 1 || ce.Errors[0].Line != 4 || !strings.Contains(ce.Errors[0].Message, "built-in "+name+" is disabled") {
				t.Errorf("got %v", ce)
			}
		})
	}
	t.Run("trace", func(t *testing.T) {
		ce := compileErr(t, engine.Source{Name: "p.rego", Type: engine.TypePlan, Body: "package spacelift\n\ndeny contains \"x\" if {\n  trace(\"hi\")\n}\n"})
		if !strings.Contains(ce.Error(), "built-in trace is disabled") {
			t.Errorf("got %v", ce)
		}
	})
}

func TestCompileEngines(t *testing.T) {
	v0 := "package spacelift\n\ndeny[\"no\"] { input.x == 1 }\n"
	v1 := "package gantry\n\ndeny contains \"no\" if { input.x == 1 }\n"
	both := "package spacelift\n\nx := 1\n"
	tests := []struct {
		name, body, engine, want string
		wantErr                  bool
	}{
		{"detect v0", v0, "", engine.EngineV0, false},
		{"detect v1 (package gantry)", v1, "", engine.EngineV1, false},
		{"either prefers v1", both, "", engine.EngineV1, false},
		{"force v0", v0, engine.EngineV0, engine.EngineV0, false},
		{"force v1 refuses v0", v0, engine.EngineV1, "", true},
		{"force v0 refuses v1", v1, engine.EngineV0, "", true},
	}
	in, err := engine.NewInput(map[string]any{"x": 1})
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := engine.Compile(engine.Source{Name: "p.rego", Type: engine.TypePlan, Body: tt.body, Engine: tt.engine})
			if tt.wantErr {
				var ce *engine.CompileError
				if !errors.As(err, &ce) {
					t.Fatalf("err = %v, want *CompileError", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if p.Engine != tt.want {
				t.Errorf("Engine = %q, want %q", p.Engine, tt.want)
			}
			r, err := p.Eval(context.Background(), in)
			if err != nil {
				t.Fatal(err)
			}
			if strings.Contains(tt.body, "deny") && (len(r.Decision.Deny) != 1 || r.Decision.Deny[0] != "no") {
				t.Errorf("Deny = %v", r.Decision.Deny)
			}
		})
	}
	if _, err := engine.Compile(engine.Source{Name: "p", Type: "BOGUS", Body: v1}); err == nil {
		t.Error("unknown type accepted")
	}
	if _, err := engine.Compile(engine.Source{Name: "p", Type: engine.TypePlan, Body: v1, Engine: "rego_v9"}); err == nil {
		t.Error("unknown engine accepted")
	}
}

func TestCompileErrorV0SyntaxReportsV0(t *testing.T) {
	ce := compileErr(t, engine.Source{Name: "p.rego", Type: engine.TypePlan, Body: "package spacelift\n\ndeny[\"x\"] {\n  input.a ==\n}\n"})
	if ce.Errors[0].Line != 5 {
		t.Errorf("got %v", ce)
	}
}

func TestValidType(t *testing.T) {
	for _, typ := range []string{engine.TypePlan, engine.TypeApproval, engine.TypeTrigger, engine.TypePush, engine.TypeNotification, engine.TypeLogin} {
		if !engine.ValidType(typ) {
			t.Errorf("ValidType(%q) = false", typ)
		}
	}
	if engine.ValidType("plan") {
		t.Error(`ValidType("plan") = true`)
	}
}

func TestCacheNamesEachPolicy(t *testing.T) {
	c := engine.NewCache(8)
	body := "package spacelift\n\ndeny contains msg if {\n  msg := 1 + \"a\"\n}\n"
	ok := "package spacelift\n\nx := 1\n"
	for _, name := range []string{"first.rego", "second.rego"} {
		p, err := c.Compile(engine.Source{Name: name, Type: engine.TypePlan, Body: ok})
		if err != nil || p.Name != name {
			t.Fatalf("Compile(%s) = %+v, %v", name, p, err)
		}
		_, err = c.Compile(engine.Source{Name: name, Type: engine.TypePlan, Body: body})
		if err == nil || !strings.HasPrefix(err.Error(), name+":4:") {
			t.Errorf("Compile(%s) error = %v, want it to name %s", name, err, name)
		}
	}
	// An error raised at evaluation names the policy evaluated.
	raise := "package spacelift\n\nx := 1 if { input.n }\n\nx := 2 if { input.n }\n"
	in, _ := engine.NewInput(map[string]any{"n": true})
	for _, name := range []string{"one.rego", "two.rego"} {
		p, err := c.Compile(engine.Source{Name: name, Type: engine.TypePlan, Body: raise})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := p.Eval(context.Background(), in); err == nil || !strings.HasPrefix(err.Error(), "policy "+name+":") {
			t.Errorf("Eval error = %v, want it to name %s", err, name)
		}
	}
}
