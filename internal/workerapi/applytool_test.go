package workerapi_test

import (
	"testing"

	"github.com/gantry-iac/gantry/internal/db"
	"github.com/gantry-iac/gantry/internal/db/dbtest"
	"github.com/gantry-iac/gantry/internal/run"
	"github.com/gantry-iac/gantry/internal/stack"
	"github.com/gantry-iac/gantry/internal/workerapi"
)

// The apply job after a confirmation reads the plan with the tool and
// version that made it, even when the stack's tool or version changed in
// between (another tool or version cannot read the plan file). The run
// shows them.
func TestApplyUsesThePlansTool(t *testing.T) {
	tests := []struct {
		name                      string
		planVersion, stackVersion string // the plan JSON's terraform_version, the stack's at plan time
		wantVersion               string
	}{
		{"version set", "1.10.7", "1.10.7", "1.10.7"},
		{"no version set: the one found", "1.9.1", "", "1.9.1"},
		{"a source build", "1.10.7-dev", "", "1.10.7"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dbtest.Each(t, func(t *testing.T, d *db.DB) {
				f := newFixture(t, d)
				c, _ := f.worker(t, builtinToken)
				st := f.stack(t, func(s *stack.Stack) { s.Tool, s.ToolVersion = stack.OpenTofu, tt.stackVersion })
				r := f.create(t, st.ID, run.Tracked)
				ctx := f.ctx
				job := claim(t, c)
				if job.Tool != stack.OpenTofu || job.ToolVersion != tt.stackVersion {
					t.Fatalf("plan job's tool = %s %s", job.Tool, job.ToolVersion)
				}
				for _, s := range []string{run.Initializing, run.Planning} {
					if err := c.Phase(ctx, job, workerapi.PhaseRequest{State: s}); err != nil {
						t.Fatalf("Phase %s: %v", s, err)
					}
				}
				if err := putArtifact(c, ctx, job, run.ArtifactPlanJSON, []byte(`{"format_version":"1.2","terraform_version":"`+tt.planVersion+`","resource_changes":[]}`)); err != nil {
					t.Fatal(err)
				}
				if next, err := c.Planned(ctx, job, workerapi.PlannedRequest{HasChanges: true, Add: 1}); err != nil || next.Next != run.NextSave {
					t.Fatalf("Planned = %+v, %v", next, err)
				}
				if err := putArtifact(c, ctx, job, run.ArtifactWorkspace, []byte("workspace")); err != nil {
					t.Fatal(err)
				}
				if err := c.HandOff(ctx, job); err != nil {
					t.Fatal(err)
				}
				if got := f.get(t, r.ID); got.Tool != stack.OpenTofu || got.ToolVersion != tt.planVersion {
					t.Errorf("run's tool = %q %q, want opentofu %s", got.Tool, got.ToolVersion, tt.planVersion)
				}
				// Switched to Terraform while the run waits for confirmation.
				if _, err := f.stacks.Update(ctx, st.ID, func(s *stack.Stack) error {
					s.Tool, s.ToolVersion = stack.Terraform, "1.5.7"
					return nil
				}); err != nil {
					t.Fatal(err)
				}
				if _, err := f.runs.Confirm(ctx, r.ID, "bob"); err != nil {
					t.Fatal(err)
				}
				apply := claim(t, c)
				if apply.Kind != run.KindApply || apply.Tool != stack.OpenTofu || apply.ToolVersion != tt.wantVersion {
					t.Errorf("apply job's tool = %s %q, want opentofu %q", apply.Tool, apply.ToolVersion, tt.wantVersion)
				}
			})
		})
	}
}
