package worker

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gantry-iac/gantry/internal/tofu"
	"github.com/gantry-iac/gantry/internal/workerapi"
)

// planJSON is what the fake tool prints for `show -json`: one create.
const planJSON = `{"format_version":"1.2","terraform_version":"1.10.7","resource_changes":[{"address":"terraform_data.x","mode":"managed","type":"terraform_data","name":"x","change":{"actions":["create"]}}]}`

// fakeTool stands in for `tofu`. It records its environment per command in
// $RECORD (a stack variable), prints the stack's secret and the state
// token (the worker must mask both), and fails on request through FAKE_*
// variables.
const fakeTool = `#!/bin/sh
cmd="$1"
env > "$RECORD/$cmd.env"
echo "fake tofu $*" >&2
case "$cmd" in
init)
	[ -f gantry_backend_override.tf ] || { echo "Error: no backend override"; exit 1; }
	[ -z "$FAKE_INIT_FAIL" ] || { echo "Error: Backend configuration changed"; exit 1; }
	echo "secret=$APP_SECRET password=$TF_HTTP_PASSWORD"
	echo "OpenTofu has been successfully initialized!"
	;;
plan)
	if [ -n "$FAKE_PLAN_SLEEP" ]; then sleep 30; fi
	if [ -n "$FAKE_PLAN_FAIL" ]; then
		printf '╷\n│ Error: Reference to undeclared resource\n│\n╵\n'
		exit 1
	fi
	echo "planfile" > gantry.tfplan
	echo "Plan: 1 to add, 0 to change, 0 to destroy."
	exit 2
	;;
show)
	[ -f "$4" ] || { echo "no plan file $4" >&2; exit 1; }
	echo "Warning: this goes to stderr" >&2
	if [ -n "$FAKE_SHOW_FILE" ]; then cat "$FAKE_SHOW_FILE"; exit 0; fi
	cat <<'JSON'
` + planJSON + `
JSON
	if [ -n "$FAKE_SHOW_SWAP" ]; then
		# Code of the run swaps the plan JSON the worker reads back.
		sleep 0.3
		ls -a .. > "$RECORD/show.ls"
		for f in ../*.json; do [ -f "$f" ] && echo '{"format_version":"1.2","resource_changes":[]}' > "$f"; done
		exit 0
	fi
	;;
apply)
	[ -f "$5" ] || { echo "Error: no plan file $5"; exit 1; }
	if [ -n "$FAKE_SERVER_DOWN" ]; then : > "$RECORD/server-down"; fi
	if [ -n "$FAKE_APPLY_ERRORED" ]; then
		case "$FAKE_APPLY_ERRORED" in
		empty) : > errored.tfstate ;;            # a full disk: nothing written
		printed)                                 # the same, and the state printed instead
			: > errored.tfstate
			echo "Error: Failed to create local state file"
			printf '{"version":4,"serial":7,"outputs":{"pw":{"value":"%s"}}}\n' "$APP_SECRET"
			;;
		truncated) printf '{"version":4,"ser' > errored.tfstate ;;
		*) echo '{"version":4,"serial":7}' > errored.tfstate ;;
		esac
		echo "Error: Failed to save state"
		exit 1
	fi
	echo "Apply complete! Resources: 1 added, 0 changed, 0 destroyed."
	;;
*)
	echo "Error: unexpected command $cmd"
	exit 1
	;;
esac
`

// gitRun runs git in dir with a fixed identity and no user configuration.
func gitRun(t *testing.T, dir string, args ...string) string {
	t.Helper()
	cmd := exec.Command("git", args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GIT_CONFIG_GLOBAL=/dev/null", "GIT_CONFIG_NOSYSTEM=1",
		"GIT_AUTHOR_NAME=Test", "GIT_AUTHOR_EMAIL=test@example.com", "GIT_COMMITTER_NAME=Test", "GIT_COMMITTER_EMAIL=test@example.com")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("git %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return strings.TrimSpace(string(out))
}

// newRepo makes a git repository with files committed on main and returns
// its path and head commit.
func newRepo(t *testing.T, files map[string]string) (string, string) {
	t.Helper()
	repo := t.TempDir()
	gitRun(t, repo, "init", "--quiet", "--initial-branch=main")
	writeFiles(t, repo, files)
	gitRun(t, repo, "add", "-A")
	gitRun(t, repo, "commit", "--quiet", "-m", "Add the stack\n\nWith a body.")
	return repo, gitRun(t, repo, "rev-parse", "HEAD")
}

type jobFixture struct {
	proto  *fakeProto
	worker *Worker
	work   string // the worker's WorkDir
	record string // where the fake tool records its environments
	tool   string
	repo   string
	head   string
}

func newJobFixture(t *testing.T, files map[string]string) *jobFixture {
	t.Helper()
	if files == nil {
		files = map[string]string{"main.tf": "resource \"terraform_data\" \"x\" {}\n"}
	}
	fx := &jobFixture{proto: newFakeProto(), work: t.TempDir(), record: t.TempDir()}
	toolDir := t.TempDir()
	fx.tool = filepath.Join(toolDir, "tofu")
	if err := os.WriteFile(fx.tool, []byte(fakeTool), 0o755); err != nil {
		t.Fatal(err)
	}
	fx.repo, fx.head = newRepo(t, files)
	resolver := &tofu.Resolver{LookPath: func(name string) (string, error) {
		if name != "tofu" {
			return "", errors.New("not found")
		}
		return fx.tool, nil
	}}
	fx.worker = New(Config{Name: "test", ServerURL: "http://127.0.0.1:9", WorkDir: fx.work, Resolver: resolver,
		Log: slog.New(slog.NewTextHandler(io.Discard, nil)), HeartbeatEvery: 20 * time.Millisecond, ClaimWait: time.Second}, fx.proto)
	return fx
}

func (fx *jobFixture) job(kind string) *workerapi.Job {
	return &workerapi.Job{
		RunID: "run-01TEST", Kind: kind, Token: "gjt_run-01TEST_jobtokensecret", RunType: "TRACKED",
		StackID: "stk", SpaceID: "root", Repository: fx.repo, Branch: "main", Tool: "opentofu",
		ManagedState: true, StatePath: "/api/v1/stacks/stk/tfstate", StateToken: "gst_run-01TEST_statetokensecret",
		Env: []workerapi.EnvVar{
			{Name: "RECORD", Value: fx.record},
			{Name: "APP_SECRET", Value: "very-secret-value", Secret: true},
		},
	}
}

func (fx *jobFixture) env(t *testing.T, cmd string) map[string]string {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(fx.record, cmd+".env"))
	if err != nil {
		t.Fatalf("the fake tool did not run %s: %v", cmd, err)
	}
	return envMap(strings.Split(strings.TrimSpace(string(raw)), "\n"))
}

func phaseStates(ps []workerapi.PhaseRequest) []string {
	var out []string
	for _, p := range ps {
		out = append(out, p.State)
	}
	return out
}

func TestJobPlanAndApply(t *testing.T) {
	t.Setenv("GANTRY_ADMIN_TOKEN", "gnt_must_not_reach_the_run")
	fx := newJobFixture(t, nil)
	job := fx.job("plan")
	job.Env = append(job.Env, workerapi.EnvVar{Name: "TF_HTTP_PASSWORD", Value: "the-users-own-password", Secret: true})
	fx.proto.next = "apply"

	fx.worker.execute(context.Background(), job, 0)
	p := fx.proto

	if got, want := strings.Join(phaseStates(p.phases), ","), "INITIALIZING,PLANNING"; got != want {
		t.Errorf("phases = %s, want %s", got, want)
	}
	if len(p.phases) > 0 {
		if p.phases[0].CommitSHA != fx.head || !strings.HasPrefix(p.phases[0].CommitMessage, "Add the stack") {
			t.Errorf("INITIALIZING reported commit %q %q, want %q and its message", p.phases[0].CommitSHA, p.phases[0].CommitMessage, fx.head)
		}
	}
	// Each phase says where it begins in the log, after the one before.
	last := int64(-1)
	for _, ph := range p.phases {
		if ph.LogOffset == nil || *ph.LogOffset <= last {
			t.Errorf("%s reported log offset %v, want one past %d", ph.State, ph.LogOffset, last)
			continue
		}
		last = *ph.LogOffset
	}
	if got := string(p.artifacts["plan.json"]); strings.TrimSpace(got) != planJSON {
		t.Errorf("plan.json artifact = %q, want the show -json output only", got)
	}
	if len(p.planned) != 1 || p.planned[0] != (workerapi.PlannedRequest{HasChanges: true, Add: 1}) {
		t.Errorf("Planned = %+v, want one report of 1 to add with changes", p.planned)
	}
	if len(p.finishes) != 1 || !p.finishes[0].OK || p.finishes[0].Reason != "" {
		t.Errorf("Finish = %+v, want one OK finish", p.finishes)
	}

	log := p.log(t, 0)
	for _, want := range []string{"[gantry] Cloning", "[gantry] Checked out commit " + fx.head + ": Add the stack\n",
		"[gantry] $ tofu init -input=false -no-color", "$ tofu plan", "-out=gantry.tfplan", "[gantry] Plan: 1 to add, 0 to change, 0 to destroy",
		"$ tofu apply -input=false -no-color -lock-timeout=10s gantry.tfplan", "Apply complete!", "secret=***** password=*****"} {
		if !strings.Contains(log, want) {
			t.Errorf("log lacks %q:\n%s", want, log)
		}
	}
	for _, secret := range []string{"very-secret-value", job.StateToken, job.Token} {
		if strings.Contains(log, secret) {
			t.Errorf("log holds the secret %q", secret)
		}
	}

	if !strings.Contains(log, "[gantry] The variable TF_HTTP_PASSWORD is ignored: this stack's state is managed by Gantry") {
		t.Errorf("log does not say the run's TF_HTTP_PASSWORD is ignored:\n%s", log)
	}
	env := fx.env(t, "init")
	if env["TF_HTTP_PASSWORD"] != job.StateToken {
		t.Errorf("TF_HTTP_PASSWORD = %q, want the state token", env["TF_HTTP_PASSWORD"])
	}
	if want := "http://127.0.0.1:9/api/v1/stacks/stk/tfstate"; env["TF_HTTP_ADDRESS"] != want || env["TF_HTTP_LOCK_ADDRESS"] != want {
		t.Errorf("TF_HTTP_ADDRESS = %q, TF_HTTP_LOCK_ADDRESS = %q, want %q", env["TF_HTTP_ADDRESS"], env["TF_HTTP_LOCK_ADDRESS"], want)
	}
	if !strings.HasPrefix(env["PATH"], filepath.Dir(fx.tool)+string(os.PathListSeparator)) {
		t.Errorf("PATH = %q, want it to start with the tool's directory", env["PATH"])
	}
	if _, ok := env["GANTRY_ADMIN_TOKEN"]; ok {
		t.Error("GANTRY_ADMIN_TOKEN reached the tool")
	}
	if env["GANTRY_RUN_ID"] != job.RunID || env["APP_SECRET"] != "very-secret-value" {
		t.Errorf("GANTRY_RUN_ID = %q, APP_SECRET = %q", env["GANTRY_RUN_ID"], env["APP_SECRET"])
	}
	if _, err := os.Stat(fx.record + "/apply.env"); err != nil {
		t.Errorf("apply did not run: %v", err)
	}
	if left, _ := os.ReadDir(fx.work); len(left) != 0 {
		t.Errorf("the job left %d entries in the work directory", len(left))
	}
}

// A worker given a relative work directory (the server's default data
// directory is ./gantry-data) hands the tool absolute paths: the tool runs
// in the project root, where relative ones name nothing.
func TestJobRelativeWorkDir(t *testing.T) {
	fx := newJobFixture(t, nil)
	t.Chdir(filepath.Dir(fx.work))
	fx.worker = New(Config{Name: "test", ServerURL: "http://127.0.0.1:9", WorkDir: filepath.Base(fx.work), Resolver: fx.worker.cfg.Resolver,
		Log: slog.New(slog.NewTextHandler(io.Discard, nil)), HeartbeatEvery: 20 * time.Millisecond, ClaimWait: time.Second}, fx.proto)
	job := fx.job("plan")
	job.OIDCToken = "header.payload.signature"
	fx.worker.execute(context.Background(), job, 0)
	if len(fx.proto.finishes) != 1 || !fx.proto.finishes[0].OK {
		t.Fatalf("Finish = %+v, want one OK finish", fx.proto.finishes)
	}
	env := fx.env(t, "init")
	for _, name := range []string{"TF_CLI_CONFIG_FILE", "GANTRY_OIDC_TOKEN_FILE"} {
		if !filepath.IsAbs(env[name]) || !strings.HasPrefix(env[name], fx.work) {
			t.Errorf("%s = %q, want an absolute path under %s", name, env[name], fx.work)
		}
	}
}

func TestJobPlannedDoneEndsWithoutFinish(t *testing.T) {
	fx := newJobFixture(t, nil)
	fx.proto.next = "done"
	fx.worker.execute(context.Background(), fx.job("plan"), 0)
	if len(fx.proto.finishes) != 0 {
		t.Errorf("Finish = %+v after the server ended the run, want none", fx.proto.finishes)
	}
	if _, err := os.Stat(fx.record + "/apply.env"); err == nil {
		t.Error("apply ran although the server said done")
	}
}

// A hand-off the server took but whose answer was lost (a proxy's 502) is
// retried, and the retry is refused for the job token the hand-off killed
// (401): the job is over, as handed off, without a failure or finish.
// A 401 to the first attempt is still a failure.
func TestJobHandOffAnswerLost(t *testing.T) {
	endRetries(t, time.Second, time.Second)
	for _, lost := range []bool{true, false} {
		fx := newJobFixture(t, nil)
		fx.proto.next = "save"
		fx.proto.handoffErr = func(n int) error {
			if lost && n == 0 {
				return &workerapi.StatusError{Status: 502, Message: "bad gateway"}
			}
			return &workerapi.StatusError{Status: 401, Code: "unauthenticated", Message: "invalid or expired run token"}
		}
		fx.worker.execute(context.Background(), fx.job("plan"), 0)
		p := fx.proto
		failed := strings.Contains(p.log(t, 0), "Run failed")
		if lost && (p.handoffs != 2 || len(p.finishes) != 0 || failed) {
			t.Errorf("answer lost: handoffs = %d, finishes = %+v, failed in the log %v; want the retry taken for the hand-off", p.handoffs, p.finishes, failed)
		}
		if !lost && (len(p.finishes) != 1 || p.finishes[0].OK) {
			t.Errorf("refused: finishes = %+v; want the job failed", p.finishes)
		}
	}
}

func TestJobSaveThenApplyOnRestoredWorkspace(t *testing.T) {
	fx := newJobFixture(t, nil)
	fx.proto.next = "save"
	fx.worker.execute(context.Background(), fx.job("plan"), 0)
	p := fx.proto
	if p.handoffs != 1 || len(p.finishes) != 0 {
		t.Fatalf("handoffs = %d, finishes = %+v; want a hand-off and no finish", p.handoffs, p.finishes)
	}
	if got := p.bodies["workspace"]; got != "*os.File" {
		t.Errorf("the workspace was uploaded from a %s, want streamed from the file it was packed into", got)
	}
	names := tarNames(t, p.artifacts["workspace"])
	for _, want := range []string{"main.tf", "gantry.tfplan", overrideFile} {
		found := false
		for _, n := range names {
			found = found || n == want
		}
		if !found {
			t.Errorf("saved workspace lacks %s: %v", want, names)
		}
	}
	if _, err := os.Stat(fx.record + "/apply.env"); err == nil {
		t.Fatal("apply ran before confirmation")
	}

	// The apply job, on "another" worker, restores the workspace.
	apply := fx.job("apply")
	apply.LogOffset = int64(len(p.log(t, 0)))
	fx.worker.execute(context.Background(), apply, 0)
	if len(p.finishes) != 1 || !p.finishes[0].OK {
		t.Fatalf("Finish = %+v, want OK after the apply; log:\n%s", p.finishes, p.log(t, 0))
	}
	if !strings.Contains(p.log(t, 0), "Restored the workspace") {
		t.Errorf("apply log lacks the restore line")
	}
}

func TestJobFailures(t *testing.T) {
	tests := []struct {
		name       string
		files      map[string]string
		edit       func(j *workerapi.Job)
		wantPhases string
		wantReason []string
	}{
		{
			name:       "before_init hook fails",
			edit:       func(j *workerapi.Job) { j.Hooks.BeforeInit = []string{"echo preparing", "exit 7"} },
			wantPhases: "INITIALIZING",
			wantReason: []string{"before_init hook failed", "`exit 7`", "code 7"},
		},
		{
			name:       "plan fails with a diagnostic",
			edit:       func(j *workerapi.Job) { j.Env = append(j.Env, workerapi.EnvVar{Name: "FAKE_PLAN_FAIL", Value: "1"}) },
			wantPhases: "INITIALIZING,PLANNING",
			wantReason: []string{"plan failed: tofu exited with code 1: Error: Reference to undeclared resource"},
		},
		{
			name:       "backend in code with managed state",
			files:      map[string]string{"main.tf": "terraform {\n  backend \"s3\" {}\n}\n"},
			wantReason: []string{`main.tf declares a backend "s3" block`},
		},
		{
			name: "backend flag in TF_CLI_ARGS_init with managed state",
			edit: func(j *workerapi.Job) {
				j.Env = append(j.Env, workerapi.EnvVar{Name: "TF_CLI_ARGS_init", Value: "-backend-config=address=http://elsewhere.example/state", Secret: true})
			},
			wantReason: []string{"the variable TF_CLI_ARGS_init passes -backend-config to init", "turn managed state off"},
		},
		{
			name: "backend off in a context's ro_TF_CLI_ARGS",
			edit: func(j *workerapi.Job) {
				j.Env = append(j.Env, workerapi.EnvVar{Name: "ro_TF_CLI_ARGS", Value: "-no-color -backend=false", Rank: 2})
			},
			wantReason: []string{"the variable ro_TF_CLI_ARGS passes -backend to init"},
		},
		{
			name:       "init fails with a committed .terraform directory",
			files:      map[string]string{"main.tf": "# code\n", ".terraform/terraform.tfstate": `{"backend":{"type":"local"}}`},
			edit:       func(j *workerapi.Job) { j.Env = append(j.Env, workerapi.EnvVar{Name: "FAKE_INIT_FAIL", Value: "1"}) },
			wantPhases: "INITIALIZING",
			wantReason: []string{"init failed: tofu exited with code 1: Error: Backend configuration changed", "the repository holds a .terraform directory in the project root: remove it from the repository"},
		},
		{
			name:       "missing project root",
			edit:       func(j *workerapi.Job) { j.ProjectRoot = "stacks/nope" },
			wantReason: []string{`project root "stacks/nope" does not exist`},
		},
		{
			name:       "missing branch",
			edit:       func(j *workerapi.Job) { j.Branch = "nope" },
			wantReason: []string{"checking out the code"},
		},
		{
			name:       "apply without a saved workspace",
			edit:       func(j *workerapi.Job) { j.Kind = "apply" },
			wantReason: []string{"fetching the saved workspace"},
		},
		{
			name:       "unknown job kind",
			edit:       func(j *workerapi.Job) { j.Kind = "dance" },
			wantReason: []string{`unknown job kind "dance"`},
		},
		{
			name:       "hook output with a secret is masked in the reason",
			edit:       func(j *workerapi.Job) { j.Hooks.AfterInit = []string{"exit 3 # very-secret-value"} },
			wantPhases: "INITIALIZING",
			wantReason: []string{"after_init hook failed", "*****"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fx := newJobFixture(t, tt.files)
			job := fx.job("plan")
			if tt.edit != nil {
				tt.edit(job)
			}
			fx.worker.execute(context.Background(), job, 0)
			p := fx.proto
			if got := strings.Join(phaseStates(p.phases), ","); got != tt.wantPhases {
				t.Errorf("phases = %q, want %q", got, tt.wantPhases)
			}
			if len(p.finishes) != 1 || p.finishes[0].OK {
				t.Fatalf("Finish = %+v, want one failed finish", p.finishes)
			}
			reason := p.finishes[0].Reason
			for _, want := range tt.wantReason {
				if !strings.Contains(reason, want) {
					t.Errorf("reason = %q, want it to contain %q", reason, want)
				}
			}
			if strings.Contains(reason, "very-secret-value") {
				t.Errorf("reason holds a secret: %q", reason)
			}
			if log := p.log(t, 0); strings.Contains(log+reason, "elsewhere.example") {
				t.Errorf("the log or the reason shows a variable's value:\n%s\n%s", log, reason)
			}
			if !strings.Contains(p.log(t, 0), "[gantry] Run failed: ") {
				t.Errorf("log lacks the failure line:\n%s", p.log(t, 0))
			}
			if len(p.planned) != 0 {
				t.Errorf("Planned = %+v after a failure", p.planned)
			}
		})
	}
}

func TestJobStoppedByHeartbeat(t *testing.T) {
	tests := []struct {
		name       string
		answer     workerapi.HeartbeatResponse
		err        error
		wantReason string
		wantLast   string // the log's closing line: it names the state the run ends in
	}{
		{name: "stop asked", answer: workerapi.HeartbeatResponse{Stop: true, Reason: "stop requested by api_key::admin", State: "STOPPED"},
			wantReason: "stop requested by api_key::admin", wantLast: "[gantry] Run stopped: stop requested by api_key::admin"},
		{name: "run failed meanwhile", answer: workerapi.HeartbeatResponse{Stop: true, Reason: "run is FAILED: no heartbeat for 1m0s", State: "FAILED"},
			wantReason: "run is FAILED", wantLast: "[gantry] Run failed: run is FAILED: no heartbeat for 1m0s"},
		{name: "run held elsewhere", answer: workerapi.HeartbeatResponse{Stop: true, Reason: "run is no longer held by this worker"},
			wantReason: "run is no longer held", wantLast: "[gantry] Job stopped: run is no longer held by this worker"},
		{name: "job refused", err: &workerapi.StatusError{Status: 401, Code: "unauthenticated", Message: "run token expired"},
			wantReason: "the server no longer accepts this job: server answered 401", wantLast: "[gantry] Job stopped: the server no longer accepts this job: server answered 401"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fx := newJobFixture(t, nil)
			job := fx.job("plan")
			job.Env = append(job.Env, workerapi.EnvVar{Name: "FAKE_PLAN_SLEEP", Value: "1"})
			fx.proto.heartbeat = func() (workerapi.HeartbeatResponse, error) {
				fx.proto.mu.Lock()
				planning := len(fx.proto.phases) == 2
				fx.proto.mu.Unlock()
				if planning {
					return tt.answer, tt.err
				}
				return workerapi.HeartbeatResponse{}, nil
			}
			start := time.Now()
			fx.worker.execute(context.Background(), job, 0)
			if d := time.Since(start); d > 15*time.Second {
				t.Errorf("stopping took %v", d)
			}
			if len(fx.proto.finishes) != 1 || fx.proto.finishes[0].OK || !strings.HasPrefix(fx.proto.finishes[0].Reason, tt.wantReason) {
				t.Errorf("Finish = %+v, want failed with reason %q", fx.proto.finishes, tt.wantReason)
			}
			lines := strings.Split(strings.TrimRight(fx.proto.log(t, 0), "\n"), "\n")
			if last := lines[len(lines)-1]; !strings.HasPrefix(last, tt.wantLast) {
				t.Errorf("the log ends with %q, want %q", last, tt.wantLast)
			}
		})
	}
}

// Phase reports do not hold the tool back, but a refused one stops the job
// at once, with the refusal as its reason, and nothing more is reported.
func TestJobPhaseRefused(t *testing.T) {
	fx := newJobFixture(t, nil)
	job := fx.job("plan")
	job.Env = append(job.Env, workerapi.EnvVar{Name: "FAKE_PLAN_SLEEP", Value: "20"})
	fx.proto.phaseErr = func(req workerapi.PhaseRequest) error {
		if req.State == "PLANNING" {
			time.Sleep(50 * time.Millisecond) // the plan has started by now
			return &workerapi.StatusError{Status: 409, Code: "conflict", Message: "run run-01TEST is CANCELED"}
		}
		return nil
	}
	start := time.Now()
	fx.worker.execute(context.Background(), job, 0)
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("the refused phase stopped the job after %v", d)
	}
	p := fx.proto
	if len(p.planned) != 0 {
		t.Errorf("Planned = %+v after a refused phase, want none", p.planned)
	}
	if len(p.finishes) != 1 || p.finishes[0].OK || !strings.Contains(p.finishes[0].Reason, "run run-01TEST is CANCELED") {
		t.Errorf("Finish = %+v, want one failure naming the refusal", p.finishes)
	}
	if _, err := os.Stat(fx.record + "/apply.env"); err == nil {
		t.Error("apply ran after a refused phase")
	}
}

// A phase report whose answer was lost (a proxy's 502) is sent again,
// and the job goes on: the server answers a phase it recorded already.
func TestJobPhaseRetried(t *testing.T) {
	endRetries(t, time.Second, time.Second)
	fx := newJobFixture(t, nil)
	fx.proto.next = "done"
	job := fx.job("plan")
	failed := false
	fx.proto.phaseErr = func(req workerapi.PhaseRequest) error {
		if req.State == "PLANNING" && !failed {
			failed = true
			return &workerapi.StatusError{Status: 502, Message: "bad gateway"}
		}
		return nil
	}
	fx.worker.execute(context.Background(), job, 0)
	p := fx.proto
	var states []string
	for _, ph := range p.phases {
		states = append(states, ph.State)
	}
	if !slices.Equal(states, []string{"INITIALIZING", "PLANNING", "PLANNING"}) {
		t.Errorf("phases reported: %v; want PLANNING sent again", states)
	}
	if len(p.planned) != 1 || len(p.finishes) != 0 {
		t.Errorf("Planned = %+v, Finish = %+v; want the plan reported, the job done", p.planned, p.finishes)
	}
}

func TestJobPlanArguments(t *testing.T) {
	tests := []struct {
		runType string
		want    []string
		notWant []string
	}{
		{"TRACKED", []string{"-detailed-exitcode", "-lock-timeout=10s"}, []string{"-lock=false", "-destroy"}},
		{"PROPOSED", []string{"-lock=false"}, []string{"-lock-timeout", "-destroy"}},
		{"DESTROY", []string{"-destroy", "-lock-timeout=10s"}, []string{"-lock=false"}},
	}
	for _, tt := range tests {
		t.Run(tt.runType, func(t *testing.T) {
			fx := newJobFixture(t, nil)
			fx.proto.next = "done"
			job := fx.job("plan")
			job.RunType = tt.runType
			fx.worker.execute(context.Background(), job, 0)
			var planLine string
			for _, l := range strings.Split(fx.proto.log(t, 0), "\n") {
				if strings.HasPrefix(l, "[gantry] $ tofu plan ") {
					planLine = l
				}
			}
			for _, w := range tt.want {
				if !strings.Contains(planLine, w) {
					t.Errorf("plan command %q lacks %s", planLine, w)
				}
			}
			for _, w := range tt.notWant {
				if strings.Contains(planLine, w) {
					t.Errorf("plan command %q has %s", planLine, w)
				}
			}
			if env := fx.env(t, "plan"); env["GANTRY_RUN_TYPE"] != tt.runType || env["TF_VAR_gantry_run_type"] != tt.runType {
				t.Errorf("run type in the environment = %q / %q", env["GANTRY_RUN_TYPE"], env["TF_VAR_gantry_run_type"])
			}
		})
	}
}

func TestJobTask(t *testing.T) {
	tests := []struct {
		name, command string
		ok            bool
		wantLog       string
		wantReason    string
	}{
		{name: "succeeds", command: "echo task ran for $GANTRY_RUN_ID in $(basename $(pwd))", ok: true, wantLog: "task ran for run-01TEST in src"},
		{name: "fails", command: "echo failing; exit 4", wantLog: "failing", wantReason: "task command exited with code 4"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fx := newJobFixture(t, nil)
			job := fx.job("task")
			job.RunType = "TASK"
			job.Command = tt.command
			fx.worker.execute(context.Background(), job, 0)
			p := fx.proto
			if got := strings.Join(phaseStates(p.phases), ","); got != "INITIALIZING,PERFORMING" {
				t.Errorf("phases = %s, want INITIALIZING,PERFORMING", got)
			}
			if len(p.finishes) != 1 || p.finishes[0].OK != tt.ok || p.finishes[0].Reason != tt.wantReason {
				t.Errorf("Finish = %+v, want ok=%v reason %q", p.finishes, tt.ok, tt.wantReason)
			}
			if log := p.log(t, 0); !strings.Contains(log, tt.wantLog) || !strings.Contains(log, "[gantry] Running task: ") {
				t.Errorf("log lacks %q:\n%s", tt.wantLog, log)
			}
			if len(p.planned) != 0 {
				t.Errorf("a task reported a plan: %+v", p.planned)
			}
		})
	}
}

// The plan JSON goes from the tool to a file, is masked from file to file
// and uploaded streamed from the file: a large plan (here with an 8 MB
// attribute holding a secret) is never held in a buffer of the worker's.
func TestJobPlanJSONGoesThroughFiles(t *testing.T) {
	fx := newJobFixture(t, nil)
	big := strings.Repeat("v", 8<<20)
	plan := `{"format_version":"1.2","resource_changes":[{"address":"terraform_data.x","change":{"actions":["create"],` +
		`"after":{"input":"` + big + `","password":"very-secret-value"}}}],"prior_state":{"values":{"big":"` + big + `"}}}`
	showFile := filepath.Join(t.TempDir(), "show.json")
	if err := os.WriteFile(showFile, []byte(plan), 0o600); err != nil {
		t.Fatal(err)
	}
	job := fx.job("plan")
	job.RunType = "PROPOSED"
	job.Env = append(job.Env, workerapi.EnvVar{Name: "FAKE_SHOW_FILE", Value: showFile})
	fx.proto.next = "done"
	fx.worker.execute(context.Background(), job, 0)
	p := fx.proto
	if got := p.bodies["plan.json"]; got != "*os.File" {
		t.Errorf("plan.json was uploaded from a %s, want streamed from its file", got)
	}
	got := p.artifacts["plan.json"]
	if !json.Valid(got) || strings.Contains(string(got), "very-secret-value") || !strings.Contains(string(got), `"password":"*****"`) ||
		!strings.Contains(string(got), big) {
		t.Errorf("plan.json artifact (%d bytes) is not the plan with its secret masked", len(got))
	}
	if len(p.planned) != 1 || p.planned[0] != (workerapi.PlannedRequest{HasChanges: true, Add: 1}) {
		t.Errorf("Planned = %+v, want one report of 1 to add", p.planned)
	}
}
