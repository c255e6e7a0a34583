package e2e

import (
	"slices"
	"strings"
	"testing"

	"github.com/gantry-iac/gantry/internal/apiv1"
)

// Configurations use only what OpenTofu has built in: terraform_data,
// local-exec, variables and outputs; init needs no network.

// helloConfig has one resource, and outputs echoing the run id that
// Gantry passes as TF_VAR_gantry_run_id.
const helloConfig = `
variable "gantry_run_id" {
  type = string
}

resource "terraform_data" "hello" {
  input = "hello-e2e"

  provisioner "local-exec" {
    command = "echo \"run env: $GANTRY_STACK_ID $GANTRY_SPACE_ID $GANTRY_RUN_TYPE $GANTRY_RUN_ID\""
  }
}

output "greeting" {
  value = terraform_data.hello.output
}

output "run_id" {
  value = var.gantry_run_id
}
`

// staticConfig plans the same changes every time: a second plan after an
// apply has none.
func staticConfig(value string) string {
	return `
resource "terraform_data" "thing" {
  input = "` + value + `"
}

output "value" {
  value = terraform_data.thing.output
}
`
}

// Scenario 1: a tracked run on an autodeploy stack plans and applies.
func TestTrackedAutodeploy(t *testing.T) {
	t.Parallel()
	eachBackend(t, func(t *testing.T, b backend) {
		s := StartServer(t, ServerConfig{DBURL: b.dbURL(t)})
		repo := NewRepo(t, map[string]string{"infra/main.tf": helloConfig, "README.md": "not the root module\n"})
		s.MustGantry(t, "space", "create", "--id", "e2e-space")
		st := s.CreateStack(t, "hello", repo.URL, "--space", "e2e-space", "--project-root", "infra", "--autodeploy", "--label", "e2e")
		if st.Space != "e2e-space" || !st.Autodeploy || st.ProjectRoot != "infra" {
			t.Errorf("created stack = %+v", st)
		}

		queued := s.Deploy(t, "hello")
		if queued.Type != apiv1.RunTracked {
			t.Errorf("deploy queued a %s run, want %s", queued.Type, apiv1.RunTracked)
		}
		r := s.WaitRun(t, queued.ID, apiv1.StateFinished)
		r = s.ShowRun(t, r.ID)
		checkDelta(t, r, 1, 0, 0)
		if r.CommitSHA != repo.Head(t) {
			t.Errorf("run commit = %q, want the head of main %q", r.CommitSHA, repo.Head(t))
		}
		want := []string{apiv1.StateQueued, apiv1.StateReady, apiv1.StatePreparing, apiv1.StateInitializing,
			apiv1.StatePlanning, apiv1.StateConfirmed, apiv1.StateApplying, apiv1.StateFinished}
		if got := Path(r); !slices.Equal(got, want) {
			t.Errorf("run went through %v, want %v", got, want)
		}

		outs := s.Outputs(t, "hello")
		if v := outs["greeting"].Value; v != "hello-e2e" {
			t.Errorf("output greeting = %v, want hello-e2e (outputs %+v)", v, outs)
		}
		if v := outs["run_id"].Value; v != r.ID {
			t.Errorf("output run_id = %v, want the run id %s: TF_VAR_gantry_run_id did not reach the configuration", v, r.ID)
		}

		versions := s.StateVersions(t, "hello")
		if cur := CurrentVersion(t, versions); cur.Run != r.ID || cur.Serial < 1 || cur.Size == 0 {
			t.Errorf("current state version = %+v, want one written by run %s", cur, r.ID)
		}
		doc := s.MustGantry(t, "stack", "state", "show", "--id", "hello")
		if !strings.Contains(doc, `"terraform_data"`) || !strings.Contains(doc, "hello-e2e") {
			t.Errorf("stack state show does not show the resource:\n%s", doc)
		}

		logs := s.WaitLog(t, "hello", r.ID, "Apply complete")
		for _, text := range []string{
			`greeting = "hello-e2e"`,
			"run env: hello e2e-space TRACKED " + r.ID,
		} {
			if !strings.Contains(logs, text) {
				t.Errorf("the log does not contain %q:\n%s", text, logs)
			}
		}

		var runs []apiv1.Run
		s.MustJSON(t, &runs, "run", "list", "--stack", "hello")
		if len(runs) != 1 || runs[0].ID != r.ID || runs[0].State != apiv1.StateFinished {
			t.Errorf("run list --stack hello = %+v, want the one finished run", runs)
		}
		var stack apiv1.Stack
		s.MustJSON(t, &stack, "stack", "show", "--id", "hello")
		if stack.State != apiv1.StateFinished {
			t.Errorf("stack state = %q, want FINISHED", stack.State)
		}
	})
}

// Scenario 2: without autodeploy a tracked run waits for confirmation;
// confirm applies it, discard drops it.
func TestConfirmAndDiscard(t *testing.T) {
	t.Parallel()
	eachBackend(t, func(t *testing.T, b backend) {
		s := StartServer(t, ServerConfig{DBURL: b.dbURL(t)})
		repo := NewRepo(t, map[string]string{"main.tf": staticConfig("v1")})
		s.CreateStack(t, "manual", repo.URL)

		var r apiv1.Run
		if res := s.GantryJSON(t, &r, "stack", "deploy", "--id", "manual", "--wait"); res.Code != 0 {
			t.Fatalf("deploy --wait must exit 0 when the run waits for confirmation\n%s", res)
		}
		if r.State != apiv1.StateUnconfirmed {
			t.Fatalf("deploy --wait printed a run in state %s, want UNCONFIRMED\n%s", r.State, s.Describe(t, r))
		}
		checkDelta(t, r, 1, 0, 0)
		if n := len(s.StateVersions(t, "manual")); n != 0 {
			t.Errorf("%d state versions before confirmation, want 0", n)
		}

		var confirmed apiv1.Run
		if res := s.GantryJSON(t, &confirmed, "stack", "confirm", "--id", "manual", "--run", r.ID, "--wait"); res.Code != 0 {
			t.Fatalf("confirm --wait failed\n%s\n%s", res, s.Describe(t, r))
		}
		if confirmed.State != apiv1.StateFinished {
			t.Fatalf("confirm --wait printed state %s, want FINISHED", confirmed.State)
		}
		r = s.ShowRun(t, r.ID)
		for _, st := range []string{apiv1.StateUnconfirmed, apiv1.StateConfirmed, apiv1.StateApplying, apiv1.StateFinished} {
			if Count(r, st) != 1 {
				t.Errorf("run path %v: want exactly one %s", Path(r), st)
			}
		}
		if v := s.Outputs(t, "manual")["value"].Value; v != "v1" {
			t.Errorf("output value = %v after the confirmed apply, want v1", v)
		}
		s.WaitLog(t, "manual", r.ID, "Apply complete")
		before := CurrentVersion(t, s.StateVersions(t, "manual"))

		repo.Commit(t, "v2", map[string]string{"main.tf": staticConfig("v2")})
		var second apiv1.Run
		if res := s.GantryJSON(t, &second, "stack", "deploy", "--id", "manual", "--wait"); res.Code != 0 || second.State != apiv1.StateUnconfirmed {
			t.Fatalf("second deploy: want exit 0 and UNCONFIRMED\n%s", res)
		}
		checkDelta(t, second, 0, 1, 0)
		var discarded apiv1.Run
		s.MustJSON(t, &discarded, "stack", "discard", "--id", "manual", "--run", second.ID)
		if discarded.State != apiv1.StateDiscarded {
			t.Errorf("discard printed state %s, want DISCARDED", discarded.State)
		}
		if got := s.GetRun(t, second.ID); got.State != apiv1.StateDiscarded || Count(got, apiv1.StateApplying) != 0 {
			t.Errorf("discarded run: state %s, path %v", got.State, Path(got))
		}
		if v := s.Outputs(t, "manual")["value"].Value; v != "v1" {
			t.Errorf("output value = %v after the discard, want v1 still", v)
		}
		if after := CurrentVersion(t, s.StateVersions(t, "manual")); after.Serial != before.Serial {
			t.Errorf("the discard changed the state: serial %d, want %d", after.Serial, before.Serial)
		}
		// Confirming a discarded run is refused.
		if res := s.Gantry(t, "stack", "confirm", "--id", "manual", "--run", second.ID); res.Code == 0 {
			t.Errorf("confirming a discarded run succeeded\n%s", res)
		}
	})
}

// Scenario 3: proposed runs do not wait for a stack held by an unconfirmed
// tracked run; blocking runs queue behind it, in order.
func TestQueueing(t *testing.T) {
	t.Parallel()
	eachBackend(t, func(t *testing.T, b backend) {
		s := StartServer(t, ServerConfig{DBURL: b.dbURL(t)})
		repo := NewRepo(t, map[string]string{"main.tf": staticConfig("one")})
		s.CreateStack(t, "queue", repo.URL)

		first := s.Deploy(t, "queue")
		s.WaitRun(t, first.ID, apiv1.StateUnconfirmed)

		repo.Commit(t, "two", map[string]string{"main.tf": staticConfig("two")})
		second := s.Deploy(t, "queue")
		third := s.Deploy(t, "queue")
		proposed := s.StartRun(t, "preview", "queue")
		if proposed.Type != apiv1.RunProposed {
			t.Errorf("preview queued a %s run", proposed.Type)
		}
		// Blocking runs go to workers before proposed ones: had the second
		// run been free to start, it would have started before the preview.
		p := s.WaitRun(t, proposed.ID, apiv1.StateFinished)
		checkDelta(t, p, 1, 0, 0) // nothing applied yet
		if Count(p, apiv1.StateApplying) != 0 {
			t.Errorf("the proposed run applied: %v", Path(p))
		}
		if r := s.GetRun(t, first.ID); r.State != apiv1.StateUnconfirmed {
			t.Errorf("first run is %s while the preview ran, want UNCONFIRMED", r.State)
		}
		for _, id := range []string{second.ID, third.ID} {
			if r := s.GetRun(t, id); r.State != apiv1.StateQueued {
				t.Errorf("run %s is %s while the stack is held, want QUEUED (path %v)", id, r.State, Path(r))
			}
		}
		if v := s.Outputs(t, "queue"); len(v) != 0 {
			t.Errorf("outputs after a preview = %+v, want none (proposed runs never write state)", v)
		}

		s.MustGantry(t, "stack", "discard", "--id", "queue", "--run", first.ID)
		r2 := s.WaitRun(t, second.ID, apiv1.StateUnconfirmed)
		if r := s.GetRun(t, third.ID); r.State != apiv1.StateQueued {
			t.Errorf("third run is %s while the second waits for confirmation, want QUEUED", r.State)
		}
		discardedAt := EnteredAt(t, s.GetRun(t, first.ID), apiv1.StateDiscarded)
		if readyAt := EnteredAt(t, r2, apiv1.StateReady); readyAt.Before(discardedAt) {
			t.Errorf("second run became READY at %s, before the first was discarded at %s", readyAt, discardedAt)
		}
		checkDelta(t, r2, 1, 0, 0)

		s.MustGantry(t, "stack", "confirm", "--id", "queue", "--run", second.ID)
		r2 = s.WaitRun(t, second.ID, apiv1.StateFinished)
		r3 := s.WaitRun(t, third.ID, apiv1.StateFinished)
		if EnteredAt(t, r3, apiv1.StateReady).Before(EnteredAt(t, r2, apiv1.StateFinished)) {
			t.Errorf("third run became READY at %s, before the second finished at %s",
				EnteredAt(t, r3, apiv1.StateReady), EnteredAt(t, r2, apiv1.StateFinished))
		}
		checkDelta(t, r3, 0, 0, 0)
		if v := s.Outputs(t, "queue")["value"].Value; v != "two" {
			t.Errorf("output value = %v, want two", v)
		}
	})
}

// Scenario 4: a plan without changes finishes without applying.
func TestNoChangePlan(t *testing.T) {
	t.Parallel()
	eachBackend(t, func(t *testing.T, b backend) {
		s := StartServer(t, ServerConfig{DBURL: b.dbURL(t)})
		repo := NewRepo(t, map[string]string{"main.tf": staticConfig("same")})
		s.CreateStack(t, "nochange", repo.URL, "--autodeploy")

		first := s.WaitRun(t, s.Deploy(t, "nochange").ID, apiv1.StateFinished)
		checkDelta(t, first, 1, 0, 0)
		versions := len(s.StateVersions(t, "nochange"))

		second := s.WaitRun(t, s.Deploy(t, "nochange").ID, apiv1.StateFinished)
		checkDelta(t, second, 0, 0, 0)
		if second.HasChanges {
			t.Errorf("second run has_changes = true")
		}
		for _, st := range []string{apiv1.StateConfirmed, apiv1.StateApplying} {
			if Count(second, st) != 0 {
				t.Errorf("the no-change run went through %s: %v", st, Path(second))
			}
		}
		if got := Path(second); len(got) < 2 || got[len(got)-2] != apiv1.StatePlanning {
			t.Errorf("the no-change run should finish right after PLANNING: %v", got)
		}
		if n := len(s.StateVersions(t, "nochange")); n != versions {
			t.Errorf("the no-change run changed the number of state versions from %d to %d", versions, n)
		}
	})
}

// Scenario 5: a destroy run removes the resources and the outputs.
func TestDestroy(t *testing.T) {
	t.Parallel()
	eachBackend(t, func(t *testing.T, b backend) {
		s := StartServer(t, ServerConfig{DBURL: b.dbURL(t)})
		repo := NewRepo(t, map[string]string{"main.tf": staticConfig("doomed")})
		s.CreateStack(t, "doomed", repo.URL, "--autodeploy")
		s.WaitRun(t, s.Deploy(t, "doomed").ID, apiv1.StateFinished)
		if v := s.Outputs(t, "doomed")["value"].Value; v != "doomed" {
			t.Fatalf("output value = %v before the destroy, want doomed", v)
		}

		var r apiv1.Run
		if res := s.GantryJSON(t, &r, "stack", "destroy", "--id", "doomed", "--wait"); res.Code != 0 {
			t.Fatalf("destroy --wait failed\n%s\n%s", res, s.Describe(t, r))
		}
		if r.Type != apiv1.RunDestroy || r.State != apiv1.StateFinished {
			t.Fatalf("destroy --wait printed a %s run in state %s, want DESTROY FINISHED", r.Type, r.State)
		}
		checkDelta(t, r, 0, 0, 1)
		if outs := s.Outputs(t, "doomed"); len(outs) != 0 {
			t.Errorf("outputs after destroy = %+v, want none", outs)
		}
		doc := s.MustGantry(t, "stack", "state", "show", "--id", "doomed")
		if strings.Contains(doc, `"terraform_data"`) {
			t.Errorf("the state still holds the resource after destroy:\n%s", doc)
		}
		s.WaitLog(t, "doomed", r.ID, "Resources: 0 added, 0 changed, 1 destroyed")
	})
}

// Scenario 6: tasks run a command in the stack's workspace.
func TestTask(t *testing.T) {
	t.Parallel()
	eachBackend(t, func(t *testing.T, b backend) {
		s := StartServer(t, ServerConfig{DBURL: b.dbURL(t)})
		repo := NewRepo(t, map[string]string{"main.tf": staticConfig("task")})
		s.CreateStack(t, "tasks", repo.URL)

		var r apiv1.Run
		res := s.GantryJSON(t, &r, "stack", "task", "--id", "tasks", "--wait", "--",
			"echo", "hello-from-task", "type=$GANTRY_RUN_TYPE", "stack=$GANTRY_STACK_ID", "&&", "test", "-d", ".terraform")
		if res.Code != 0 || r.State != apiv1.StateFinished {
			t.Fatalf("task: want exit 0 and FINISHED\n%s\n%s", res, s.Describe(t, r))
		}
		if r.Type != apiv1.RunTask {
			t.Errorf("task run type = %s", r.Type)
		}
		logs := s.WaitLog(t, "tasks", r.ID, "hello-from-task")
		if !strings.Contains(logs, "hello-from-task type=TASK stack=tasks") {
			t.Errorf("the task's output is missing from the log:\n%s", logs)
		}
		r = s.GetRun(t, r.ID)
		if Count(r, apiv1.StatePerforming) != 1 || Count(r, apiv1.StatePlanning) != 0 {
			t.Errorf("task path = %v, want PERFORMING and no PLANNING", Path(r))
		}

		var failed apiv1.Run
		res = s.GantryJSON(t, &failed, "stack", "task", "--id", "tasks", "--wait", "--", "false")
		if res.Code == 0 {
			t.Errorf("a failing task --wait exited 0\n%s", res)
		}
		if failed.State != apiv1.StateFailed {
			t.Fatalf("failing task ended %q, want FAILED\n%s", failed.State, res)
		}
		if !strings.Contains(failed.Reason, "1") {
			t.Errorf("failing task reason %q does not give the exit code", failed.Reason)
		}
		if outs := s.Outputs(t, "tasks"); len(outs) != 0 {
			t.Errorf("tasks wrote outputs: %+v", outs)
		}
	})
}
