package worker

import (
	"context"
	"os"
	"strings"
	"testing"

	"github.com/gantry-iac/gantry/internal/workerapi"
)

// On an autodeploy stack the worker reports the plan as pending and, told to
// apply, makes the plan JSON while applying, then sends it and its counts.
func TestJobAutodeployAppliesWhileShowing(t *testing.T) {
	fx := newJobFixture(t, nil)
	job := fx.job("plan")
	job.Autodeploy = true
	fx.proto.next = "apply"

	fx.worker.execute(context.Background(), job, 0)
	p := fx.proto

	if len(p.planned) != 1 || p.planned[0] != (workerapi.PlannedRequest{HasChanges: true, PlanPending: true}) {
		t.Fatalf("Planned = %+v, want one pending report", p.planned)
	}
	if len(p.deltas) != 1 || p.deltas[0] != (workerapi.DeltaRequest{Add: 1}) {
		t.Errorf("RecordDelta = %+v, want one report of 1 to add", p.deltas)
	}
	if got := string(p.artifacts["plan.json"]); strings.TrimSpace(got) != planJSON {
		t.Errorf("plan.json artifact = %q", got)
	}
	if len(p.finishes) != 1 || !p.finishes[0].OK {
		t.Errorf("Finish = %+v, want one OK finish", p.finishes)
	}
	for _, cmd := range []string{"apply", "show"} {
		if _, err := os.Stat(fx.record + "/" + cmd + ".env"); err != nil {
			t.Errorf("%s did not run: %v", cmd, err)
		}
	}
	if log := p.log(t, 0); !strings.Contains(log, "Plan: 1 to add") || !strings.Contains(log, "Apply complete!") {
		t.Errorf("log:\n%s", log)
	}
}

// When the server wants the plan first, the worker makes it, uploads it and
// reports again with the counts, and runs the after_plan hooks once.
func TestJobAutodeployServerWantsThePlanFirst(t *testing.T) {
	fx := newJobFixture(t, nil)
	job := fx.job("plan")
	job.Autodeploy = true
	job.Hooks.AfterPlan = []string{"echo after-plan-hook >> \"$RECORD/hooks\""}
	fx.proto.nextQueue = []string{"plan", "apply"}

	fx.worker.execute(context.Background(), job, 0)
	p := fx.proto

	want := []workerapi.PlannedRequest{{HasChanges: true, PlanPending: true}, {HasChanges: true, Add: 1}}
	if len(p.planned) != 2 || p.planned[0] != want[0] || p.planned[1] != want[1] {
		t.Fatalf("Planned = %+v, want %+v", p.planned, want)
	}
	if len(p.deltas) != 0 {
		t.Errorf("RecordDelta = %+v, want none (the counts went with the report)", p.deltas)
	}
	if p.artifacts["plan.json"] == nil {
		t.Error("no plan.json uploaded")
	}
	if len(p.finishes) != 1 || !p.finishes[0].OK {
		t.Errorf("Finish = %+v", p.finishes)
	}
	hooks, err := os.ReadFile(fx.record + "/hooks")
	if err != nil || strings.Count(string(hooks), "after-plan-hook") != 1 {
		t.Errorf("after_plan hook ran %q (%v), want once", hooks, err)
	}
}
