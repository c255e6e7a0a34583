package library

import (
	"context"
	"io/fs"
	"sort"
	"strings"
	"testing"

	"github.com/gantry-iac/gantry/internal/policy/engine"
)

type m = map[string]any

// eval compiles the library policy name and evaluates it on input.
func eval(t *testing.T, name string, input m) engine.Result {
	t.Helper()
	e, ok := Get(name)
	if !ok {
		t.Fatalf("no policy %q", name)
	}
	p, err := engine.Compile(engine.Source{Name: name + ".rego", Type: e.Type, Body: e.Body, Engine: engine.EngineV1})
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	in, err := engine.NewInput(input)
	if err != nil {
		t.Fatal(err)
	}
	res, err := p.Eval(context.Background(), in)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return res
}

func TestCatalog(t *testing.T) {
	list := List()
	if len(list) < 22 {
		t.Errorf("%d policies, want at least 22", len(list))
	}
	if !sort.SliceIsSorted(list, func(i, j int) bool { return list[i].Name < list[j].Name }) {
		t.Errorf("List not sorted by name")
	}
	files, _ := fs.Glob(files, "policies/*.rego")
	if len(files) != len(list) {
		t.Errorf("%d rego files but %d entries", len(files), len(list))
	}
	types := map[string]bool{}
	for _, e := range list {
		types[e.Type] = true
		if !engine.ValidType(e.Type) {
			t.Errorf("%s: type %q", e.Name, e.Type)
		}
		if e.Description == "" || len(e.Labels) == 0 || !strings.HasPrefix(e.Body, "package spacelift\n") {
			t.Errorf("%s: incomplete entry", e.Name)
		}
		p, err := engine.Compile(engine.Source{Name: e.Name + ".rego", Type: e.Type, Body: e.Body, Engine: engine.EngineV1})
		if err != nil {
			t.Errorf("%s does not compile: %v", e.Name, err)
			continue
		}
		if p.Engine != engine.EngineV1 || p.Package != "spacelift" {
			t.Errorf("%s: engine %s package %s", e.Name, p.Engine, p.Package)
		}
		if got, ok := Get(e.Name); !ok || got.Body != e.Body {
			t.Errorf("Get(%s) = %v", e.Name, ok)
		}
	}
	for _, typ := range []string{"PLAN", "APPROVAL", "TRIGGER", "GIT_PUSH", "NOTIFICATION", "LOGIN"} {
		if !types[typ] {
			t.Errorf("no %s policy", typ)
		}
	}
	if _, ok := Get("no-such-policy"); ok {
		t.Errorf("Get of an unknown name succeeded")
	}
	a, _ := Get("plan-required-tags")
	a.Labels[0] = "changed"
	if b, _ := Get("plan-required-tags"); b.Labels[0] == "changed" {
		t.Errorf("Get shares its labels slice")
	}
}

// testCase: evaluating policy on input must satisfy check. positive cases
// are those where the policy acts (denies, approves, triggers, notifies...).
type testCase struct {
	policy, name string
	positive     bool
	input        m
	check        func(engine.Decision) bool
}

func TestPolicies(t *testing.T) {
	var cases []testCase
	cases = append(cases, planCases(t)...)
	cases = append(cases, approvalCases()...)
	cases = append(cases, triggerCases()...)
	cases = append(cases, notificationCases()...)
	cases = append(cases, pushCases()...)
	cases = append(cases, loginCases()...)
	covered := map[string][2]int{}
	for _, tc := range cases {
		t.Run(tc.policy+"/"+tc.name, func(t *testing.T) {
			res := eval(t, tc.policy, tc.input)
			if !tc.check(res.Decision) {
				t.Errorf("unexpected decision %+v\nvalues %v", res.Decision, res.Values)
			}
		})
		c := covered[tc.policy]
		if tc.positive {
			c[0]++
		} else {
			c[1]++
		}
		covered[tc.policy] = c
	}
	for _, e := range List() {
		if c := covered[e.Name]; c[0] == 0 || c[1] == 0 {
			t.Errorf("%s: %d positive and %d negative tests, want at least one of each", e.Name, c[0], c[1])
		}
	}
}

func denies(d engine.Decision) bool    { return len(d.Deny) > 0 }
func allows(d engine.Decision) bool    { return len(d.Deny) == 0 && len(d.Warn) == 0 }
func warns(d engine.Decision) bool     { return len(d.Warn) > 0 && len(d.Deny) == 0 }
func approves(d engine.Decision) bool  { return d.Approve && !d.Reject }
func rejects(d engine.Decision) bool   { return d.Reject }
func undecided(d engine.Decision) bool { return !d.Approve && !d.Reject }

func denyContains(s string) func(engine.Decision) bool {
	return func(d engine.Decision) bool {
		for _, msg := range d.Deny {
			if strings.Contains(msg, s) {
				return true
			}
		}
		return false
	}
}
