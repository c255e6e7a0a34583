package engine_test

import (
	"context"
	"strings"
	"testing"

	"github.com/gantry-iac/gantry/internal/policy/engine"
)

// A built-in's error (OPA would make the expression undefined, so a deny
// rule that hits one would not fire) fails the evaluation, which denies;
// what is undefined stays undefined, as Spacelift's policies rely on.
func TestBuiltinErrorsFailClosed(t *testing.T) {
	input := map[string]any{"n": 5, "size": "100GB", "pattern": "[", "tags": nil,
		"resources": []any{map[string]any{"address": "a.b", "after": nil}}}
	for _, tt := range []struct{ body, err string }{
		{`deny contains "too big" if input.n / 0 > 1`, "p.rego:3: eval_builtin_error: div: divide by zero"},
		{`deny contains "too big" if to_number(input.size) > 50`, `to_number: strconv.ParseFloat: parsing "100GB": invalid syntax`},
		{`deny contains "x" if regex.match(input.pattern, "a")`, "regex.match: error parsing regexp"},
		{`deny contains "x" if upper(input.n) == "A"`, "upper: operand 1 must be string but got number"},
		// Inside a negation or a function too.
		{"deny contains \"x\" if not small\n\nsmall if input.n / 0 < 1", "div: divide by zero"},
		{"f(x) := x / 0\n\ndeny contains \"x\" if not f(input.n)", "div: divide by zero"},
		// Undefined, not errors: no deny, no error.
		{`deny contains "x" if input.missing.key == 1`, ""},
		{`deny contains "x" if input.tags.owner == ""`, ""},
		{`deny contains "x" if startswith(input.missing, "a")`, ""},
		{"deny contains r.address if {\n\tsome r in input.resources\n\tr.after.public\n}", ""},
		{`deny contains "x" if not input.resources[0].after.tags.owner`, "deny"},
		{`deny contains "x" if object.get(input, ["tags", "owner"], "") == "nobody"`, ""},
	} {
		p, err := engine.Compile(engine.Source{Name: "p.rego", Type: engine.TypePlan, Body: "package spacelift\n\n" + tt.body + "\n"})
		if err != nil {
			t.Fatalf("%q: %v", tt.body, err)
		}
		res, err := p.Eval(context.Background(), mustInput(t, input))
		switch tt.err {
		case "":
			if err != nil || len(res.Decision.Deny) != 0 {
				t.Errorf("%q: deny %v, err %v; want neither", tt.body, res.Decision.Deny, err)
			}
		case "deny":
			if err != nil || len(res.Decision.Deny) != 1 {
				t.Errorf("%q: deny %v, err %v; want a deny", tt.body, res.Decision.Deny, err)
			}
		default:
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("%q: err = %v, decision %+v; want %q", tt.body, err, res.Decision, tt.err)
			}
		}
	}
}
