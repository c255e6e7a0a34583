package engine

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/rego"
	"github.com/open-policy-agent/opa/v1/types"
)

// callOf returns a PLAN policy calling built-in b with input values.
func callOf(b *ast.Builtin) string {
	args := []string{}
	if b.Decl != nil {
		for i := range b.Decl.FuncArgs().Args {
			args = append(args, fmt.Sprintf("input.a%d", i))
		}
	}
	return "package spacelift\n\ndeny contains sprintf(\"%v\", [x]) if {\n  x := " + b.Name + "(" + strings.Join(args, ", ") + ")\n}\n"
}

func TestEveryBuiltinNotAllowedIsRefused(t *testing.T) {
	refused := 0
	for _, b := range ast.CapabilitiesForThisVersion().Builtins {
		if allowedBuiltins[b.Name] {
			continue
		}
		refused++
		_, err := Compile(Source{Name: "p.rego", Type: TypePlan, Body: callOf(b)})
		var ce *CompileError
		if !errors.As(err, &ce) || !strings.Contains(ce.Error(), "built-in "+b.Name+" is disabled in Gantry policies") {
			t.Errorf("%s: Compile = %v, want it refused", b.Name, err)
		}
	}
	for _, name := range []string{"json.match_schema", "json.verify_schema", "http.send", "strings.render_template",
		"net.cidr_expand", "io.jwt.decode_verify", "crypto.x509.parse_and_verify_certificates"} {
		if allowedBuiltins[name] {
			t.Errorf("%s is allowed", name)
		}
	}
	if refused < len(disabledBuiltins) {
		t.Errorf("%d built-ins refused, fewer than the %d disabled", refused, len(disabledBuiltins))
	}
	// Only allowed and Gantry's built-ins reach the compiler.
	for _, b := range capabilities().Builtins {
		if !allowedBuiltins[b.Name] && b.Name != sanitizedName && b.Name != planResourcesName {
			t.Errorf("capabilities hold %s", b.Name)
		}
	}
	// The allow-list names only built-ins OPA has (a stale name is a typo or
	// a built-in OPA dropped).
	have := map[string]bool{}
	for _, b := range ast.CapabilitiesForThisVersion().Builtins {
		have[b.Name] = true
	}
	for name := range allowedBuiltins {
		if !have[name] {
			t.Errorf("allowed built-in %s is not one of OPA's", name)
		}
	}
}

// A built-in a newer OPA adds is not on the allow-list: it is refused with
// a message saying so.
func TestBuiltinNotListedIsRefused(t *testing.T) {
	delete(allowedBuiltins, "glob.quote_meta")
	t.Cleanup(func() { allowedBuiltins["glob.quote_meta"] = true })
	_, err := newEnv(gantryBuiltins...).compile(Source{Name: "p.rego", Type: TypePlan,
		Body: "package spacelift\n\ndeny contains x if {\n  x := glob.quote_meta(\"*\")\n}\n"})
	var ce *CompileError
	if !errors.As(err, &ce) || len(ce.Errors) != 1 || ce.Errors[0].Line != 4 ||
		!strings.Contains(ce.Error(), "built-in glob.quote_meta is disabled in Gantry policies: "+notListedReason) {
		t.Errorf("Compile = %v", err)
	}
}

// testEnv is the default env plus a test-only built-in.
func testEnv(name string, impl func(rego.BuiltinContext, *ast.Term) (*ast.Term, error)) *env {
	decl := types.NewFunction(types.Args(types.S), types.S)
	cb := customBuiltin{
		decl: &ast.Builtin{Name: name, Decl: decl},
		impl: rego.Function1(&rego.Function{Name: name, Decl: decl}, impl),
	}
	return newEnv(append(append([]customBuiltin{}, gantryBuiltins...), cb)...)
}

func TestEvaluatorGetsCapabilities(t *testing.T) {
	var got *ast.Capabilities
	e := testEnv("gantry_test.caps", func(bctx rego.BuiltinContext, x *ast.Term) (*ast.Term, error) {
		got = bctx.Capabilities
		return x, nil
	})
	p, err := e.compile(Source{Name: "p.rego", Type: TypePlan, Body: "package spacelift\n\nx := gantry_test.caps(\"a\")\n"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.Eval(context.Background(), Input{}); err != nil {
		t.Fatal(err)
	}
	if got != e.caps || got.AllowNet == nil || len(got.AllowNet) != 0 {
		t.Errorf("evaluator capabilities: the env's %v, allow_net %#v; want the env's, with allow_net empty (no host)", got == e.caps, got.AllowNet)
	}
	if c := capabilities(); c.AllowNet == nil || len(c.AllowNet) != 0 {
		t.Errorf("AllowNet = %#v, want empty", c.AllowNet)
	}
}

// blockingEnv has a built-in blocking, deaf to cancellation, until release
// is closed (at the end of the test at the latest).
func blockingEnv(t *testing.T) (e *env, release func()) {
	ch := make(chan struct{})
	var once sync.Once
	release = func() { once.Do(func() { close(ch) }) }
	t.Cleanup(release)
	e = testEnv("gantry_test.block", func(_ rego.BuiltinContext, x *ast.Term) (*ast.Term, error) {
		<-ch
		return x, nil
	})
	return e, release
}

func shortTriggerTimeout(t *testing.T, d time.Duration) {
	old := Timeouts[TypeTrigger]
	Timeouts[TypeTrigger] = d
	t.Cleanup(func() { Timeouts[TypeTrigger] = old })
}

func waitNoAbandoned(t *testing.T) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); abandoned.Load() != 0; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%d abandoned evaluations still counted", abandoned.Load())
		}
	}
}

const blockingPolicy = "package spacelift\n\ntrigger contains x if {\n  x := gantry_test.block(\"a\")\n}\n"

func TestTimeoutInsideOneBuiltinCall(t *testing.T) {
	shortTriggerTimeout(t, 50*time.Millisecond)
	e, release := blockingEnv(t)
	p, err := e.compile(Source{Name: "p.rego", Type: TypeTrigger, Body: blockingPolicy})
	if err != nil {
		t.Fatal(err)
	}
	go func() { time.Sleep(3 * time.Second); release() }()
	start := time.Now()
	_, err = p.Eval(context.Background(), Input{})
	if d := time.Since(start); d > time.Second {
		t.Errorf("Eval returned after %v, want about 50ms + grace", d)
	}
	if !errors.Is(err, ErrTimeout) || !strings.Contains(err.Error(), "policy p.rego: policy evaluation timed out after 50ms") {
		t.Errorf("err = %v", err)
	}
	if n := abandoned.Load(); n != 1 {
		t.Errorf("abandoned = %d, want 1", n)
	}
	release()
	waitNoAbandoned(t)

	// The caller giving up also returns at once.
	shortTriggerTimeout(t, time.Minute)
	e, release = blockingEnv(t)
	p, _ = e.compile(Source{Name: "p.rego", Type: TypeTrigger, Body: blockingPolicy})
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	start = time.Now()
	_, err = p.Eval(ctx, Input{})
	if d := time.Since(start); d > time.Second || err == nil || !strings.Contains(err.Error(), "evaluation abandoned") {
		t.Errorf("after %v: err = %v", d, err)
	}
	release()
	waitNoAbandoned(t)
}

func TestAbandonedEvaluationsAreBounded(t *testing.T) {
	shortTriggerTimeout(t, 20*time.Millisecond)
	e, release := blockingEnv(t)
	p, err := e.compile(Source{Name: "p.rego", Type: TypeTrigger, Body: blockingPolicy})
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for range maxAbandoned {
		wg.Go(func() {
			if _, err := p.Eval(context.Background(), Input{}); !errors.Is(err, ErrTimeout) {
				t.Errorf("err = %v, want a timeout", err)
			}
		})
	}
	wg.Wait()
	if n := abandoned.Load(); n != maxAbandoned {
		t.Fatalf("abandoned = %d, want %d", n, maxAbandoned)
	}
	quick, err := Compile(Source{Name: "q.rego", Type: TypeTrigger, Body: "package spacelift\n\ntrigger contains \"s\"\n"})
	if err != nil {
		t.Fatal(err)
	}
	_, err = quick.Eval(context.Background(), Input{})
	if !errors.Is(err, ErrBusy) || !strings.Contains(err.Error(), "policy q.rego: policy engine busy") {
		t.Errorf("err = %v, want ErrBusy", err)
	}
	release()
	waitNoAbandoned(t)
	if r, err := quick.Eval(context.Background(), Input{}); err != nil || len(r.Decision.Trigger) != 1 {
		t.Errorf("after release: %v, %v", r.Decision, err)
	}
}

func TestCache(t *testing.T) {
	c := NewCache(2)
	src := func(name, body string) Source {
		return Source{Name: name, Type: TypePlan, Body: "package spacelift\n" + body}
	}
	a1, err := c.Compile(src("a1.rego", "a := 1\n"))
	if err != nil {
		t.Fatal(err)
	}
	a2, err := c.Compile(src("a2.rego", "a := 1\n"))
	if err != nil {
		t.Fatal(err)
	}
	if a1.query != a2.query {
		t.Error("same source compiled twice")
	}
	if a1.Name != "a1.rego" || a2.Name != "a2.rego" {
		t.Errorf("names %q, %q: each call must get its own", a1.Name, a2.Name)
	}
	if a1.Hash != SourceHash(src("x", "a := 1\n")) || len(a1.Hash) != 64 {
		t.Errorf("Hash = %q", a1.Hash)
	}
	b, _ := c.Compile(src("b.rego", "b := 1\n"))
	if b.query == a1.query || b.Hash == a1.Hash {
		t.Error("different sources share a policy")
	}
	if _, err := c.Compile(src("bad.rego", "deny if { true }\n")); err == nil {
		t.Error("bad policy compiled")
	}
	c.Compile(src("c.rego", "c := 1\n"))
	if c.Len() != 2 {
		t.Errorf("Len = %d, want 2", c.Len())
	}
	if a3, _ := c.Compile(src("a1.rego", "a := 1\n")); a3.query == a1.query {
		t.Error("least recently used policy not evicted")
	}
}

// A compilation failure seen by a caller waiting on another name's
// compilation is compiled again, under the caller's name.
func TestCacheFailureNamesCaller(t *testing.T) {
	body := "package spacelift\n\ndeny if { true }\n"
	_, err := Compile(Source{Name: "first.rego", Type: TypePlan, Body: body})
	e := &cacheEntry{name: "first.rego", err: err}
	_, err = e.result(Source{Name: "second.rego", Type: TypePlan, Body: body})
	if err == nil || !strings.HasPrefix(err.Error(), "second.rego:3:") {
		t.Errorf("err = %v, want it to name second.rego", err)
	}
}
