package engine_test

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"testing"

	"github.com/gantry-iac/gantry/internal/policy/engine"
	"github.com/gantry-iac/gantry/internal/policy/engine/enginetest"
)

// compilePlanPolicies compiles enginetest's 20 PLAN policies.
func compilePlanPolicies(tb testing.TB) []*engine.Policy {
	tb.Helper()
	var ps []*engine.Policy
	for i, body := range enginetest.PlanPolicies() {
		p, err := engine.Compile(engine.Source{Name: fmt.Sprintf("p%02d.rego", i+1), Type: engine.TypePlan, Body: body})
		if err != nil {
			tb.Fatalf("policy %d: %v", i+1, err)
		}
		ps = append(ps, p)
	}
	return ps
}

// evalAll evaluates every policy against in, in parallel, and combines.
func evalAll(tb testing.TB, ps []*engine.Policy, in engine.Input) engine.Decision {
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

func benchmarkEval(b *testing.B, n int) {
	ps := compilePlanPolicies(b)
	raw, err := json.Marshal(enginetest.Plan(n))
	if err != nil {
		b.Fatal(err)
	}
	in, err := engine.NewInput(json.RawMessage(raw))
	if err != nil {
		b.Fatal(err)
	}
	d := evalAll(b, ps, in)
	b.ReportMetric(float64(len(d.Deny)), "denies")
	b.ResetTimer()
	for b.Loop() {
		evalAll(b, ps, in)
	}
}

// BenchmarkEval100 evaluates 20 PLAN policies, each on its own, in
// parallel, against a plan of 100 resource changes converted once.
func BenchmarkEval100(b *testing.B) { benchmarkEval(b, 100) }

// BenchmarkEval10k is BenchmarkEval100 with 10,000 resource changes.
func BenchmarkEval10k(b *testing.B) { benchmarkEval(b, 10_000) }

// BenchmarkNewInput10k converts a 10,000-change plan JSON document.
func BenchmarkNewInput10k(b *testing.B) {
	raw, err := json.Marshal(enginetest.Plan(10_000))
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(raw)))
	for b.Loop() {
		if _, err := engine.NewInput(json.RawMessage(raw)); err != nil {
			b.Fatal(err)
		}
	}
}
