package worker

import (
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gantry-iac/gantry/internal/workerapi"
)

// The plan JSON reaches the server as `show -json` printed it: code of the
// run that outlives its command finds no file of it to swap.
func TestPlanJSONIsNotReadBackByPath(t *testing.T) {
	fx := newJobFixture(t, nil)
	job := fx.job("plan")
	job.Env = append(job.Env, workerapi.EnvVar{Name: "FAKE_SHOW_SWAP", Value: "1"})
	fx.proto.next = "done"
	fx.worker.execute(context.Background(), job, 0)
	p := fx.proto
	if got := string(p.artifacts["plan.json"]); strings.TrimSpace(got) != planJSON {
		t.Errorf("plan.json artifact = %q, want what show -json printed; finishes %+v", got, p.finishes)
	}
	if len(p.planned) != 1 || p.planned[0].Add != 1 {
		t.Errorf("Planned = %+v, want the plan's 1 to add", p.planned)
	}
	ls, err := os.ReadFile(fx.record + "/show.ls")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(ls), ".json") {
		t.Errorf("the job's directory has a JSON file while show runs:\n%s", ls)
	}
}

// A saved plan changed after OpenTofu wrote it (here by an after_plan
// hook; a process the run left could do it at any time) is neither
// applied nor saved for a person to confirm, nor applied by the apply job
// when it changed after the workspace was restored.
func TestChangedPlanIsRefused(t *testing.T) {
	forge := "echo forged > gantry.tfplan"
	for _, tt := range []struct{ next, doing string }{{"apply", "applying"}, {"save", "saving"}} {
		t.Run(tt.next, func(t *testing.T) {
			fx := newJobFixture(t, nil)
			job := fx.job("plan")
			job.Hooks.AfterPlan = []string{forge}
			fx.proto.next = tt.next
			fx.worker.execute(context.Background(), job, 0)
			p := fx.proto
			want := "the saved plan gantry.tfplan changed after OpenTofu wrote it"
			if len(p.finishes) != 1 || p.finishes[0].OK || !strings.Contains(p.finishes[0].Reason, want) ||
				!strings.Contains(p.finishes[0].Reason, "not "+tt.doing+" it") {
				t.Fatalf("finishes = %+v, want a failure saying the plan changed, not %s it", p.finishes, tt.doing)
			}
			if _, err := os.Stat(fx.record + "/apply.env"); err == nil {
				t.Error("the changed plan was applied")
			}
			if _, ok := p.artifacts["workspace"]; ok || p.handoffs != 0 {
				t.Errorf("the changed plan was saved (handoffs %d)", p.handoffs)
			}
		})
	}

	// The apply job: the plan as packed is the one applied.
	fx := newJobFixture(t, nil)
	fx.proto.next = "save"
	fx.worker.execute(context.Background(), fx.job("plan"), 0)
	if fx.proto.handoffs != 1 {
		t.Fatalf("handoffs = %d", fx.proto.handoffs)
	}
	apply := fx.job("apply")
	apply.Hooks.BeforeApply = []string{forge}
	fx.worker.execute(context.Background(), apply, 0)
	p := fx.proto
	if len(p.finishes) != 1 || p.finishes[0].OK || !strings.Contains(p.finishes[0].Reason, "changed after OpenTofu wrote it") {
		t.Fatalf("apply job finishes = %+v, want the changed plan refused", p.finishes)
	}
	if _, err := os.Stat(fx.record + "/apply.env"); err == nil {
		t.Error("the apply job applied the changed plan")
	}
}

// A work directory reached through a symbolic link: the saved plan is
// found in the packed workspace all the same (the project root has the
// link resolved, the job's directory not).
func TestSavedPlanUnderALinkedWorkDir(t *testing.T) {
	fx := newJobFixture(t, nil)
	link := filepath.Join(t.TempDir(), "work")
	if err := os.Symlink(fx.work, link); err != nil {
		t.Fatal(err)
	}
	fx.worker = New(Config{Name: "test", ServerURL: "http://127.0.0.1:9", WorkDir: link, Resolver: fx.worker.cfg.Resolver,
		Log: slog.New(slog.NewTextHandler(io.Discard, nil)), HeartbeatEvery: 20 * time.Millisecond, ClaimWait: time.Second}, fx.proto)
	fx.proto.next = "save"
	fx.worker.execute(context.Background(), fx.job("plan"), 0)
	if fx.proto.handoffs != 1 || len(fx.proto.finishes) != 0 {
		t.Fatalf("handoffs = %d, finishes = %+v; want the plan saved", fx.proto.handoffs, fx.proto.finishes)
	}
	fx.worker.execute(context.Background(), fx.job("apply"), 0)
	if len(fx.proto.finishes) != 1 || !fx.proto.finishes[0].OK {
		t.Fatalf("apply job finishes = %+v, want OK", fx.proto.finishes)
	}
}
