package engine

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/topdown"
)

// lowLimits lowers the memory limits for one test.
func lowLimits(t *testing.T, call, eval int64) {
	t.Helper()
	oldCall, oldEval := maxCallBytes, maxEvalBytes
	maxCallBytes, maxEvalBytes = call, eval
	t.Cleanup(func() { maxCallBytes, maxEvalBytes = oldCall, oldEval })
}

// evalPlan evaluates a PLAN policy of body against input.
func evalPlan(t *testing.T, body string, input map[string]any) (Result, error) {
	t.Helper()
	p, err := Compile(Source{Name: "p.rego", Type: TypePlan, Body: "package spacelift\n\n" + body + "\n"})
	if err != nil {
		t.Fatalf("compile %q: %v", body, err)
	}
	in, err := NewInput(input)
	if err != nil {
		t.Fatal(err)
	}
	return p.Eval(context.Background(), in)
}

var limitsInput = map[string]any{
	"s":     strings.Repeat("a", 40_000),
	"s60":   strings.Repeat("a", 60_000),
	"arr":   anys(3000, func(i int) any { return i }),
	"cidrs": anys(100, func(i int) any { return fmt.Sprintf("10.%d.0.0/16", i) }),
	"json":  "[" + strings.Repeat("0,", 20_000) + "0]",
	"yaml":  strings.Repeat("- 0\n", 20_000),
	"query": strings.Repeat("a&", 20_000),
	"huge":  strings.Repeat("1", 200),
}

func anys(n int, f func(int) any) []any {
	out := make([]any, n)
	for i := range out {
		out[i] = f(i)
	}
	return out
}

// Every bounded built-in refuses a call whose result would be over the
// limit, before making it, and still answers a small call.
func TestBuiltinResultLimits(t *testing.T) {
	lowLimits(t, 64<<10, 512<<20)
	ladder := map[string]any{}
	for i := range 40 { // 2^40 paths from n0
		next := []any{fmt.Sprintf("a%d", i+1), fmt.Sprintf("b%d", i+1)}
		ladder[fmt.Sprintf("a%d", i)], ladder[fmt.Sprintf("b%d", i)] = next, next
	}
	input := map[string]any{"ladder": ladder}
	for k, v := range limitsInput {
		input[k] = v
	}
	cases := []struct{ name, over, under, want string }{
		{"concat", `concat("", [input.s, input.s])`, `concat("-", ["a", "b"])`, `"a-b"`},
		{"concat", `concat(input.s, ["", "", ""])`, `concat("", [])`, `""`},
		{"sprintf", `sprintf("%s%s", [input.s, input.s])`, `sprintf("%s-%d", ["a", 1])`, `"a-1"`},
		{"sprintf", `sprintf("%[1]s%[1]s", [input.s])`, `sprintf("%[1]s%[1]s", ["ab"])`, `"abab"`},
		{"sprintf", `sprintf("%900000d", [1])`, `sprintf("%5d|%.2f|%[1]d", [1, 2.5])`, `"    1|2.50|1"`},
		{"sprintf", `sprintf(concat("", ["%", format_int(2 * count(input.s), 10), "d"]), [1])`, `sprintf("%%%-8s|", ["a"])`, `"%a       |"`},
		{"replace", `replace(input.s, "a", "aa")`, `replace("abc", "b", "xx")`, `"axxc"`},
		{"strings.replace_n", `strings.replace_n({"a": "aa"}, input.s)`, `strings.replace_n({"a": "A", "b": "BB"}, "abc")`, `"ABBc"`},
		{"regex.replace", `regex.replace(input.s, "a", "aa")`, `regex.replace("abc", "[ab]", "($0)")`, `"(a)(b)c"`},
		{"json.marshal", `json.marshal([input.s, input.s])`, `json.marshal({"a": [1, "<"]})`, `"{\"a\":[1,\"\\u003c\"]}"`},
		{"json.marshal_with_options", `json.marshal_with_options([input.s, input.s], {"pretty": true})`, `json.marshal_with_options([1], {"indent": " "})`, `"[\n 1\n]"`},
		{"yaml.marshal", `yaml.marshal([input.s])`, `yaml.marshal({"a": 1})`, `"a: 1\n"`},
		{"base64.encode", `base64.encode(input.s60)`, `base64.encode("ab")`, `"YWI="`},
		{"base64url.encode", `base64url.encode(input.s60)`, `base64url.encode("ab")`, `"YWI="`},
		{"base64url.encode_no_pad", `base64url.encode_no_pad(input.s60)`, `base64url.encode_no_pad("ab")`, `"YWI"`},
		{"hex.encode", `hex.encode(input.s)`, `hex.encode("a")`, `"61"`},
		{"urlquery.encode", `urlquery.encode(input.s)`, `urlquery.encode("a b")`, `"a+b"`},
		{"urlquery.encode_object", `urlquery.encode_object({"a": input.s})`, `urlquery.encode_object({"a": "b"})`, `"a=b"`},
		{"glob.quote_meta", `glob.quote_meta(input.s)`, `glob.quote_meta("*")`, `"\\*"`},
		{"upper", `upper(input.s60)`, `upper("ab")`, `"AB"`},
		{"lower", `lower(input.s60)`, `lower("AB")`, `"ab"`},
		{"time.format", `time.format([0, "UTC", input.s])`, `time.format([0, "UTC", "2006"])`, `"1970"`},
		{"split", `split(input.s, "")`, `split("a,b", ",")`, `["a","b"]`},
		{"strings.split_n", `strings.split_n(input.s, "", -1)`, `strings.split_n(input.s, "", 2)`, ``},
		{"indexof_n", `indexof_n(input.s, "a")`, `indexof_n("aba", "a")`, `[0,2]`},
		{"regex.split", `regex.split("a", input.s)`, `regex.split(",", "a,b")`, `["a","b"]`},
		{"regex.find_n", `regex.find_n("a", input.s, -1)`, `regex.find_n("a", input.s, 2)`, `["a","a"]`},
		{"regex.find_all_string_submatch_n", `regex.find_all_string_submatch_n("(a)", input.s, -1)`,
			`regex.find_all_string_submatch_n("(a)", "ba", -1)`, `[["a","a"]]`},
		{"numbers.range", `numbers.range(1, 10000)`, `numbers.range(3, 1)`, `[3,2,1]`},
		{"numbers.range_step", `numbers.range_step(1, 100000, 10)`, `numbers.range_step(1, 10, 4)`, `[1,5,9]`},
		{"array.concat", `array.concat(input.arr, input.arr)`, `array.concat([1], [2])`, `[1,2]`},
		{"array.flatten", `array.flatten([input.arr, input.arr])`, `array.flatten([[1], 2])`, `[1,2]`},
		{"net.cidr_contains_matches", `net.cidr_contains_matches(input.cidrs, input.cidrs)`,
			`net.cidr_contains_matches("10.0.0.0/8", "10.1.0.0/16")`, `[["10.0.0.0/8","10.1.0.0/16"]]`},
		{"urlquery.decode_object", `urlquery.decode_object(input.query)`, `urlquery.decode_object("a=1&a=2")`, `{"a":["1","2"]}`},
		{"json.patch", `json.patch({"a": input.s}, [{"op": "copy", "from": "/a", "path": "/b"}])`,
			`json.patch({"a": 1}, [{"op": "copy", "from": "/a", "path": "/b"}])`, `{"a":1,"b":1}`},
		{"json.unmarshal", `json.unmarshal(input.json)`, `json.unmarshal("[1, {\"a\": 2}]")`, `[1,{"a":2}]`},
		{"yaml.unmarshal", `yaml.unmarshal(input.yaml)`, `yaml.unmarshal("a: [1]")`, `{"a":[1]}`},
		{"io.jwt.decode", `io.jwt.decode(input.s)`, ``, ``},
		{"graphql.parse_query", `graphql.parse_query(input.s)`, ``, ``},
		{"crypto.x509.parse_certificates", `crypto.x509.parse_certificates(input.s)`, ``, ``},
		{"graph.reachable_paths", `graph.reachable_paths(input.ladder, ["a0"])`,
			`graph.reachable_paths({"a": ["b", "c"], "b": ["c"], "c": []}, ["a"])`, `[["a","b","c"],["a","c"]]`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := evalPlan(t, "x := "+c.over, input)
			if !errors.Is(err, ErrTooLarge) || !strings.Contains(err.Error(), c.name+": result over 64 KiB (the most one built-in call may return)") {
				t.Errorf("%s: err = %v, want it refused", c.over, err)
			}
			if c.under == "" {
				return
			}
			res, err := evalPlan(t, "x := "+c.under, input)
			if err != nil {
				t.Fatalf("%s: %v", c.under, err)
			}
			if c.want != "" {
				if got := mustJSON(t, res.Values["x"]); got != c.want {
					t.Errorf("%s = %s, want %s", c.under, got, c.want)
				}
			}
		})
	}
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// A refused call fails the evaluation wherever it is, also where an error
// of a built-in would only make an expression undefined (non-strict
// built-in errors): a policy cannot turn the limit into an allow.
func TestBuiltinLimitFailsClosed(t *testing.T) {
	lowLimits(t, 64<<10, 512<<20)
	for _, body := range []string{
		"big if count(concat(\"\", [input.s, input.s])) > 0\n\ndeny contains \"small\" if not big",
		"f(x) := concat(\"\", [x, x])\n\ndeny contains \"small\" if not f(input.s)",
		"deny contains \"small\" if { every s in [input.s] { concat(\"\", [s, s]) != \"\" } }",
	} {
		res, err := evalPlan(t, body, limitsInput)
		if !errors.Is(err, ErrTooLarge) || !strings.Contains(err.Error(), "p.rego:") {
			t.Errorf("%q: err = %v, decision %+v; want the evaluation failed, with the place", body, err, res.Decision)
		}
	}
}

// Arithmetic cannot build numbers larger than the input may hold.
func TestArithmeticResultLimits(t *testing.T) {
	cases := []struct{ body, want string }{
		{"x0 := 99999999999999999999\nx1 := x0 * x0\nx2 := x1 * x1\nx3 := x2 * x2", "mul: result: number 99999999999999999992...0000000001 too large (at most 100 characters"},
		{"x := bits.lsh(1, 100000000)", "bits.lsh: result would be a number over 100 characters"},
		{"x := product(numbers.range(2, 5000))", "product: result would be a number over 100 characters"},
		{"x := to_number(input.huge)", "to_number: result: number 11111111111111111111...1111111111 too large"},
		{"x := json.unmarshal(concat(\"\", [\"[\", input.huge, \"]\"]))", "json.unmarshal: number 11111111111111111111...1111111111 too large"},
	}
	for _, c := range cases {
		res, err := evalPlan(t, c.body, limitsInput)
		if c.want == "" {
			if err != nil {
				t.Errorf("%q: %v", c.body, err)
			}
			continue
		}
		if !errors.Is(err, ErrTooLarge) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q: err = %v, values %v; want %q", c.body, err, res.Values, c.want)
		}
	}
	res, err := evalPlan(t, "x := 12345678901234567890 * 98765432109876543210\ny := 1e50 * 10\nz := 1 / 3", nil)
	if err != nil || mustJSON(t, res.Values) != `{"x":1219326311370217952237463801111263526900,"y":1000000000000000000000000000000000000000000000000000,"z":0.33333333333333333334}` {
		t.Errorf("values %v, err %v", mustJSON(t, res.Values), err)
	}
}

// The calls of one evaluation, each under the limit of one call, are
// bounded together.
func TestEvaluationMemoryBudget(t *testing.T) {
	lowLimits(t, 64<<10, 1<<20)
	_, err := evalPlan(t, "x := [y | some i in numbers.range(1, 200); y := concat(\"\", [input.s, format_int(i, 10)])]", limitsInput)
	if !errors.Is(err, ErrTooLarge) || !strings.Contains(err.Error(), "concat: the built-in calls of this evaluation would take over 1 MiB together") {
		t.Errorf("err = %v", err)
	}
	deep := any("leaf")
	for range 2000 {
		deep = []any{deep}
	}
	_, err = evalPlan(t, "x := [p | walk(input.deep, [p, _])]", map[string]any{"deep": deep})
	if !errors.Is(err, ErrTooLarge) || !strings.Contains(err.Error(), "walk: the built-in calls of this evaluation") {
		t.Errorf("walk: err = %v", err)
	}
	// Each evaluation has its own budget.
	for range 3 {
		if _, err := evalPlan(t, "x := count([y | some i in numbers.range(1, 5); y := concat(\"\", [input.s, format_int(i, 10)])])", limitsInput); err != nil {
			t.Fatal(err)
		}
	}
	// Without the path, walk allocates nothing per node.
	if _, err := evalPlan(t, "x := count([v | walk(input.deep, [_, v])])", map[string]any{"deep": deep}); err != nil {
		t.Error(err)
	}
}

// graph.reachable_paths gives what OPA's does.
func TestReachablePathsAsOPA(t *testing.T) {
	graphs := []string{
		`{"a": ["b", "c"], "b": ["c"], "c": []}`,
		`{"a": ["b"], "b": ["c"], "c": ["a"]}`,
		`{"a": {"b"}, "b": {"d", "x"}, "d": set()}`,
		`{"a": ["b"], "b": "c"}`,
		`{"a": [], "z": ["a"]}`,
	}
	for _, g := range graphs {
		for _, from := range []string{`["a"]`, `{"a", "z", "q"}`, `[]`} {
			args := []*ast.Term{ast.MustParseTerm(g), ast.MustParseTerm(from)}
			var want, got *ast.Term
			errWant := opaReachablePaths(topdown.BuiltinContext{}, args, func(t *ast.Term) error { want = t; return nil })
			errGot := reachablePaths(topdown.BuiltinContext{}, args, func(t *ast.Term) error { got = t; return nil })
			if errWant != nil || errGot != nil || !want.Equal(got) {
				t.Errorf("graph.reachable_paths(%s, %s) = %v (%v), OPA's %v (%v)", g, from, got, errGot, want, errWant)
			}
		}
	}
}

// What an evaluation keeps is bounded: rule values too large are replaced
// by a note; the rules Gantry reads too large fail the evaluation.
func TestKeptValuesAndDecisionBounded(t *testing.T) {
	oldValue, oldValues, oldDecision := maxKeptValue, maxKeptValues, maxDecisionBytes
	maxKeptValue, maxKeptValues, maxDecisionBytes = 1000, 2500, 1000
	t.Cleanup(func() { maxKeptValue, maxKeptValues, maxDecisionBytes = oldValue, oldValues, oldDecision })
	in := map[string]any{"s": strings.Repeat("a", 900), "big": strings.Repeat("a", 2000)}
	tooLarge, noRoom := "(value not kept: over 1000 bytes as JSON)", "(value not kept: the values of this evaluation are over 2500 bytes as JSON)"
	for body, want := range map[string]map[string]any{
		"a := input.s\nb := input.big\nc := input.s\nd := input.s\ne := 1": {
			"a": in["s"], "b": tooLarge, "c": in["s"], "d": noRoom, "e": "1",
		},
		// Values sharing terms count each time, as written out.
		"a := [x, x]\nb := [\"b\"]\nx := [input.s]": {
			"a": tooLarge, "b": "[b]", "x": fmt.Sprint([]any{in["s"]}),
		},
	} {
		res, err := evalPlan(t, body, in)
		if err != nil {
			t.Fatal(err)
		}
		if len(res.Values) != len(want) {
			t.Errorf("%q: values %v", body, res.Values)
		}
		for k, w := range want {
			if got := fmt.Sprint(res.Values[k]); got != fmt.Sprint(w) {
				t.Errorf("%q: %s = %.60q, want %.60q", body, k, got, w)
			}
		}
	}
	_, err := evalPlan(t, "deny contains input.big", in)
	if !errors.Is(err, ErrTooLarge) || !strings.Contains(err.Error(), "rules deny and the others Gantry reads are over 1000 bytes as JSON") {
		t.Errorf("deny: err = %v", err)
	}
	// A rule Gantry does not read for the type is only kept, or not.
	if _, err := evalPlan(t, "approve := input.big", in); err != nil {
		t.Errorf("approve in a PLAN policy: %v", err)
	}
}
