package engine

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"sync"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/rego"
	"github.com/open-policy-agent/opa/v1/types"
)

// disabledBuiltins are the built-ins policies may not call, with why.
// Spacelift disables the first five so policies stay pure and fast; Gantry
// adds the other ones that reach outside the process or are not
// deterministic.
var disabledBuiltins = map[string]string{
	"http.send":          "policies may not make network requests",
	"opa.runtime":        "policies may not read the runtime environment",
	"rego.parse_module":  "policies may not parse other modules",
	"time.now_ns":        "the clock makes policies impure; use input.spacelift.request.timestamp_ns or input.request.timestamp_ns",
	"trace":              "tracing is not available",
	"net.lookup_ip_addr": "policies may not make network requests",
	"rand.intn":          "policies must be deterministic",
	"uuid.rfc4122":       "policies must be deterministic",
}

// sanitizedName is Gantry's (and Spacelift's) custom built-in.
const sanitizedName = "sanitized"

var sanitizedDecl = types.NewFunction(types.Args(types.Named("x", types.S)), types.Named("output", types.S))

// sanitizedFunc registers the implementation of sanitized(x) on a rego
// instance.
var sanitizedFunc = rego.Function1(
	&rego.Function{Name: sanitizedName, Decl: sanitizedDecl, Memoize: true},
	func(_ rego.BuiltinContext, x *ast.Term) (*ast.Term, error) {
		s, ok := x.Value.(ast.String)
		if !ok {
			return nil, fmt.Errorf("sanitized: operand 1 must be string but got %s", ast.ValueName(x.Value))
		}
		return ast.StringTerm(Sanitized(string(s))), nil
	},
)

// Sanitized returns the last 8 hex characters of the sha256 of s: how
// Spacelift masks sensitive strings in plan input and what the
// sanitized(x) built-in returns.
func Sanitized(s string) string {
	sum := sha256.Sum256([]byte(s))
	h := hex.EncodeToString(sum[:])
	return h[len(h)-8:]
}

var (
	capsOnce sync.Once
	caps     *ast.Capabilities
)

// capabilities are OPA's, without the disabled built-ins, with sanitized.
func capabilities() *ast.Capabilities {
	capsOnce.Do(func() {
		c := ast.CapabilitiesForThisVersion()
		kept := c.Builtins[:0]
		for _, b := range c.Builtins {
			if _, off := disabledBuiltins[b.Name]; !off {
				kept = append(kept, b)
			}
		}
		c.Builtins = append(kept,
			&ast.Builtin{Name: sanitizedName, Decl: sanitizedDecl},
			&ast.Builtin{Name: planResourcesName, Decl: planResourcesDecl})
		caps = c
	})
	return caps
}

// newCompiler returns a compiler with Gantry's capabilities.
func newCompiler() *ast.Compiler {
	return ast.NewCompiler().
		WithCapabilities(capabilities()).
		WithDefaultRegoVersion(ast.RegoV1)
}

// disabledCalls finds calls of disabled built-ins in mod, so the author is
// told why rather than "undefined function".
func disabledCalls(file string, mod *ast.Module) []Diag {
	var diags []Diag
	seen := map[*ast.Location]bool{}
	report := func(name string, loc *ast.Location) {
		why, off := disabledBuiltins[name]
		if !off || seen[loc] {
			return
		}
		seen[loc] = true
		diags = append(diags, diagAt(file, loc, fmt.Sprintf("built-in %s is disabled in Gantry policies: %s", name, why)))
	}
	ast.NewGenericVisitor(func(x any) bool {
		switch x := x.(type) {
		case *ast.Expr:
			if x.IsCall() {
				report(x.Operator().String(), x.Location)
			}
		case *ast.Term:
			if call, ok := x.Value.(ast.Call); ok && len(call) > 0 {
				report(call[0].String(), x.Location)
			}
		}
		return false
	}).Walk(mod)
	sortDiags(diags)
	return diags
}
