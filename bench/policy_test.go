package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/gantry-iac/gantry/internal/policy/engine"
	"github.com/gantry-iac/gantry/internal/policy/engine/enginetest"
)

// BenchmarkPolicyEval measures Gantry's policy engine against `opa eval`
// (OPA v1.22.3, the version in go.mod, built for the run):
//
//   - 20 realistic PLAN policies (enginetest.PlanPolicies) evaluated each on
//     its own, in parallel, against a plan of 10,000 resource changes given
//     as JSON: converting the input once, then the evaluations; against
//     `opa eval -d dir -i input.json 'data.spacelift'` with the same 20
//     policies in one package (and Gantry's plan helpers as a module).
//     Target: Gantry takes at most a third of opa eval's time.
//   - the same 20 policies against a typical plan of 100 changes, input
//     conversion included. Target: under 5 ms.
//
// Both sides must produce the same deny and warn messages.
func BenchmarkPolicyEval(b *testing.B) {
	requireBench(b)
	hideNsPerOp(b)
	dir := b.TempDir()
	opa := buildOPA(b, dir)
	policies := compilePlanPolicies(b)
	samples := envInt(b, "GANTRY_BENCH_POLICY_SAMPLES", 7)

	raw10k := planJSON(b, 10_000)
	input := filepath.Join(dir, "input.json")
	if err := os.WriteFile(input, raw10k, 0o644); err != nil {
		b.Fatal(err)
	}
	polDir := writeOPAPolicies(b, dir)

	var opaTimes, gantryTimes, convTimes, evalTimes []time.Duration
	var opaOut []byte
	var ours engine.Decision
	for range samples {
		start := time.Now()
		out, err := exec.Command(opa, "eval", "-d", polDir, "-i", input, "data.spacelift").Output()
		if err != nil {
			b.Fatalf("opa eval: %v", err)
		}
		opaTimes = append(opaTimes, time.Since(start))
		opaOut = out

		start = time.Now()
		in, err := engine.NewInput(json.RawMessage(raw10k))
		if err != nil {
			b.Fatal(err)
		}
		conv := time.Since(start)
		ours = evalPlanPolicies(b, policies, in)
		total := time.Since(start)
		gantryTimes, convTimes, evalTimes = append(gantryTimes, total), append(convTimes, conv), append(evalTimes, total-conv)
	}
	checkSameAsOPA(b, ours, opaOut)

	opaMed, gMed := summarize(opaTimes).p50, summarize(gantryTimes).p50
	ratio := float64(gMed) / float64(opaMed)
	record(b, result{
		Target:   "20 plan policies, 10k changes, vs opa eval",
		Measured: fmt.Sprintf("gantry %s (input %s + eval %s), opa eval %s: %.2f", ms(gMed), ms(summarize(convTimes).p50), ms(summarize(evalTimes).p50), ms(opaMed), ratio),
		Goal:     "<= 0.33",
		Met:      ratio <= 1.0/3,
	})
	note(b, "%d samples, medians; %d deny and %d warn messages; GOMAXPROCS %d", samples, len(ours.Deny), len(ours.Warn), runtime.GOMAXPROCS(0))

	raw100 := planJSON(b, 100)
	var small []time.Duration
	for range 200 {
		start := time.Now()
		in, err := engine.NewInput(json.RawMessage(raw100))
		if err != nil {
			b.Fatal(err)
		}
		evalPlanPolicies(b, policies, in)
		small = append(small, time.Since(start))
	}
	s := summarize(small)
	record(b, result{
		Target:   "20 plan policies, 100 changes",
		Measured: fmt.Sprintf("p50 %s, p95 %s (input conversion included)", ms(s.p50), ms(s.p95)),
		Goal:     "< 5 ms",
		Met:      s.p50 < 5*time.Millisecond,
	})
}

// opaVersion is the OPA release `opa eval` is measured with: the version
// of the library in go.mod.
const opaVersion = "v1.22.3"

// buildOPA builds the opa command of OPA opaVersion into dir, from the Go
// module proxy, with OPA's own go.mod (not Gantry's, which lacks the
// dependencies of OPA's command line).
func buildOPA(tb testing.TB, dir string) string {
	tb.Helper()
	cmd := exec.Command("go", "install", "github.com/open-policy-agent/opa@"+opaVersion)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GOBIN="+dir, "GOFLAGS=")
	if b, err := cmd.CombinedOutput(); err != nil {
		tb.Fatalf("go install opa: %v\n%s", err, b)
	}
	return filepath.Join(dir, "opa")
}

func planJSON(tb testing.TB, n int) []byte {
	tb.Helper()
	raw, err := json.Marshal(enginetest.Plan(n))
	if err != nil {
		tb.Fatal(err)
	}
	return raw
}

// writeOPAPolicies writes the 20 policies, importing the plan helpers, and
// the helper module into a directory for opa eval.
func writeOPAPolicies(tb testing.TB, dir string) string {
	tb.Helper()
	polDir := filepath.Join(dir, "policies")
	if err := os.MkdirAll(polDir, 0o755); err != nil {
		tb.Fatal(err)
	}
	pkg, _ := engine.PlanHelpersRego()
	files := map[string]string{"helpers.rego": opaHelpers}
	for i, p := range enginetest.PlanPolicies() {
		files[fmt.Sprintf("p%02d.rego", i+1)] = enginetest.ForOPA(p, pkg)
	}
	for name, body := range files {
		if err := os.WriteFile(filepath.Join(polDir, name), []byte(body), 0o644); err != nil {
			tb.Fatal(err)
		}
	}
	return polDir
}

// opaHelpers defines the plan helpers in plain Rego (opa has no
// gantry.plan_resources built-in), with the same meaning.
const opaHelpers = `package gantry_internal.plan

affected_resources contains r if {
	some r in input.terraform.resource_changes
	some a in r.change.actions
	a in {"create", "update", "delete"}
}

created_resources contains r if {
	some r in input.terraform.resource_changes
	r.change.actions == ["create"]
}

deleted_resources contains r if {
	some r in input.terraform.resource_changes
	r.change.actions == ["delete"]
}

updated_resources contains r if {
	some r in input.terraform.resource_changes
	r.change.actions == ["update"]
}

recreated_resources contains r if {
	some r in input.terraform.resource_changes
	r.change.actions in {["create", "delete"], ["delete", "create"]}
}
`

func compilePlanPolicies(tb testing.TB) []*engine.Policy {
	tb.Helper()
	var ps []*engine.Policy
	for i, body := range enginetest.PlanPolicies() {
		p, err := engine.Compile(engine.Source{Name: fmt.Sprintf("p%02d.rego", i+1), Type: engine.TypePlan, Body: body})
		if err != nil {
			tb.Fatal(err)
		}
		ps = append(ps, p)
	}
	return ps
}

// evalPlanPolicies evaluates every policy on its own, in parallel, and
// combines the decisions.
func evalPlanPolicies(tb testing.TB, ps []*engine.Policy, in engine.Input) engine.Decision {
	tb.Helper()
	ds := make([]engine.Decision, len(ps))
	errs := make([]error, len(ps))
	var wg sync.WaitGroup
	for i, p := range ps {
		wg.Go(func() {
			r, err := p.Eval(context.Background(), in)
			ds[i], errs[i] = r.Decision, err
		})
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			tb.Fatal(err)
		}
	}
	return engine.Combine(engine.TypePlan, ds)
}

// checkSameAsOPA compares Gantry's deny and warn messages with opa eval's.
func checkSameAsOPA(tb testing.TB, ours engine.Decision, opaOut []byte) {
	tb.Helper()
	var doc struct {
		Result []struct {
			Expressions []struct {
				Value struct {
					Deny []string `json:"deny"`
					Warn []string `json:"warn"`
				} `json:"value"`
			} `json:"expressions"`
		} `json:"result"`
	}
	if err := json.NewDecoder(bytes.NewReader(opaOut)).Decode(&doc); err != nil || len(doc.Result) == 0 {
		tb.Fatalf("opa eval output: %v", err)
	}
	theirs := doc.Result[0].Expressions[0].Value
	want := engine.Combine(engine.TypePlan, []engine.Decision{{Deny: theirs.Deny, Warn: theirs.Warn}})
	if fmt.Sprint(want.Deny) != fmt.Sprint(ours.Deny) || fmt.Sprint(want.Warn) != fmt.Sprint(ours.Warn) {
		tb.Fatalf("gantry and opa eval disagree: %d/%d deny, %d/%d warn", len(ours.Deny), len(want.Deny), len(ours.Warn), len(want.Warn))
	}
}
