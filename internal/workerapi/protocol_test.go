package workerapi_test

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gantry-iac/gantry/internal/db"
	"github.com/gantry-iac/gantry/internal/db/dbtest"
	"github.com/gantry-iac/gantry/internal/errs"
	"github.com/gantry-iac/gantry/internal/run"
	"github.com/gantry-iac/gantry/internal/stack"
	"github.com/gantry-iac/gantry/internal/workerapi"
)

func TestRegister(t *testing.T) {
	tests := []struct {
		name      string
		token     string
		req       workerapi.RegisterRequest
		status    int    // 0 for success
		message   string // part of the error message
		wantPool  string
		wantKind  errs.Kind
		permanent bool
	}{
		{name: "built-in pool", token: builtinToken, req: workerapi.RegisterRequest{Name: "w", Version: workerapi.Version}, wantPool: ""},
		{name: "gpu pool", token: gpuToken, req: workerapi.RegisterRequest{Name: "w", Version: workerapi.Version, Instance: "srv-1"}, wantPool: "gpu"},
		{name: "wrong pool token", token: "nope", req: workerapi.RegisterRequest{Name: "w", Version: workerapi.Version}, status: 401, wantKind: errs.Unauthenticated},
		{name: "no pool token", token: "", req: workerapi.RegisterRequest{Name: "w", Version: workerapi.Version}, status: 401, wantKind: errs.Unauthenticated},
		{name: "newer worker", token: builtinToken, req: workerapi.RegisterRequest{Name: "w", Version: workerapi.Version + 1}, status: 400, wantKind: errs.Invalid,
			message: "worker protocol version 2 is not supported: this server speaks version 1"},
		{name: "no version", token: builtinToken, req: workerapi.RegisterRequest{Name: "w"}, status: 400, wantKind: errs.Invalid, message: "version 0"},
		{name: "no name", token: builtinToken, req: workerapi.RegisterRequest{Version: workerapi.Version}, status: 400, wantKind: errs.Invalid, message: "name"},
		{name: "long name", token: builtinToken, req: workerapi.RegisterRequest{Name: strings.Repeat("n", 256), Version: workerapi.Version}, status: 400, wantKind: errs.Invalid},
	}
	dbtest.Each(t, func(t *testing.T, d *db.DB) {
		f := newFixture(t, d)
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				c := workerapi.NewClient(f.url, tt.token)
				resp, err := c.Register(f.ctx, tt.req)
				if tt.status == 0 {
					if err != nil {
						t.Fatalf("Register: %v", err)
					}
					if !strings.HasPrefix(resp.WorkerID, "wrk-") || !strings.HasPrefix(resp.Token, "gwt_"+resp.WorkerID+"_") || resp.Pool != tt.wantPool {
						t.Fatalf("Register = %+v", resp)
					}
					if job, err := c.Claim(f.ctx, 0); err != nil || job != nil {
						t.Fatalf("Claim with nothing to do = %+v, %v", job, err)
					}
					return
				}
				se := wantStatus(t, err, tt.status)
				if se.Kind() != tt.wantKind || !workerapi.Permanent(err) || !strings.Contains(se.Message, tt.message) {
					t.Fatalf("error = %+v (kind %s), want kind %s and a message with %q", se, se.Kind(), tt.wantKind, tt.message)
				}
				// A client that failed to register has no worker token.
				_, err = c.Claim(f.ctx, 0)
				wantStatus(t, err, 401)
			})
		}
		// A worker token made up or of another shape is refused.
		for _, token := range []string{"gwt_wrk-nobody_secret", "gwt_", builtinToken} {
			req, _ := http.NewRequest("POST", f.url+workerapi.Prefix+"/claim", nil)
			req.Header.Set("Authorization", "Bearer "+token)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != 401 {
				t.Errorf("claim with worker token %q: HTTP %d, want 401", token, resp.StatusCode)
			}
		}
	})
}

func TestJobContents(t *testing.T) {
	const secret = "sup3r-secret"
	dbtest.Each(t, func(t *testing.T, d *db.DB) {
		f := newFixture(t, d)
		hooks := stack.Hooks{BeforeInit: []string{"echo before init"}, AfterPlan: []string{"make check", "echo done"}, AfterApply: []string{"notify"}}
		st := f.stack(t, func(s *stack.Stack) {
			s.Branch = "release/1"
			s.ProjectRoot = "envs/prod"
			s.Tool = stack.Terraform
			s.ToolVersion = "1.9.8"
			s.ManagedState = true
			s.Hooks = hooks
		})
		for _, v := range []stack.EnvVar{{Name: "TF_VAR_region", Value: "eu-west-1"}, {Name: "API_KEY", Value: secret, Secret: true}} {
			if _, err := f.stacks.SetEnv(f.ctx, st.ID, v); err != nil {
				t.Fatal(err)
			}
		}
		c, _ := f.worker(t, builtinToken)
		f.handler.AccountName = "gantry.example.com"
		r := f.create(t, st.ID, run.Tracked)
		job := claim(t, c)
		got := *job
		got.Token = "" // checked below; other credentials are not compared
		want := workerapi.Job{
			RunID: r.ID, Kind: run.KindPlan, RunType: run.Tracked,
			StackID: st.ID, SpaceID: "root", Repository: "https://example.com/infra.git", Branch: "release/1",
			CommitSHA: "0123abcd", ProjectRoot: "envs/prod", Tool: stack.Terraform, ToolVersion: "1.9.8",
			Env:          []workerapi.EnvVar{{Name: "API_KEY", Value: secret, Secret: true}, {Name: "TF_VAR_region", Value: "eu-west-1"}},
			Hooks:        workerapi.Hooks{BeforeInit: hooks.BeforeInit, AfterPlan: hooks.AfterPlan, AfterApply: hooks.AfterApply},
			ManagedState: true, StatePath: "/api/v1/stacks/" + st.ID + "/tfstate", LogOffset: 0,
		}
		for _, x := range []struct {
			field     string
			got, want any
		}{
			{"run", got.RunID, want.RunID}, {"kind", got.Kind, want.Kind}, {"run type", got.RunType, want.RunType},
			{"stack", got.StackID, want.StackID}, {"space", got.SpaceID, want.SpaceID}, {"repository", got.Repository, want.Repository},
			{"branch", got.Branch, want.Branch}, {"commit", got.CommitSHA, want.CommitSHA}, {"project root", got.ProjectRoot, want.ProjectRoot},
			{"tool", got.Tool, want.Tool}, {"tool version", got.ToolVersion, want.ToolVersion}, {"command", got.Command, want.Command},
			{"env", got.Env, want.Env}, {"hooks", got.Hooks, want.Hooks}, {"managed state", got.ManagedState, want.ManagedState},
			{"state path", got.StatePath, want.StatePath}, {"log offset", got.LogOffset, want.LogOffset},
			// TF_VAR_spacelift_account_name, _run_trigger and _run_state.
			{"account name", got.AccountName, "gantry.example.com"}, {"run trigger", got.RunTrigger, r.TriggeredBy},
			{"run state", got.RunState, run.Preparing},
		} {
			if !reflect.DeepEqual(x.got, x.want) {
				t.Errorf("job %s = %#v, want %#v", x.field, x.got, x.want)
			}
		}
		if !strings.HasPrefix(job.Token, "gjt_"+r.ID+"_") {
			t.Fatalf("job token %q does not name the run", job.Token)
		}
		if _, err := f.runs.Authenticate(f.ctx, job.Token, false); err != nil {
			t.Fatalf("job token does not authenticate: %v", err)
		}

		// A task job carries its command.
		task, err := f.runs.Create(f.ctx, run.New{StackID: f.stack(t, nil).ID, Type: run.Task, Command: "tofu state list", TriggeredBy: "alice"})
		if err != nil {
			t.Fatal(err)
		}
		tj := claim(t, c)
		if tj.RunID != task.ID || tj.Kind != run.KindTask || tj.RunType != run.Task || tj.Command != "tofu state list" || len(tj.Env) != 0 {
			t.Fatalf("task job = %+v", tj)
		}
	})
}

// TestSaveAndApply walks a run that waits for confirmation through the
// protocol: plan job, hand-off, apply job.
func TestSaveAndApply(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, d *db.DB) {
		f := newFixture(t, d)
		c, reg := f.worker(t, builtinToken)
		r := f.create(t, f.stack(t, nil).ID, run.Tracked)
		job := claim(t, c)
		if job.RunID != r.ID {
			t.Fatalf("claimed %s", job.RunID)
		}
		ctx := f.ctx

		if err := c.Phase(ctx, job, workerapi.PhaseRequest{State: run.Planning}); err != nil {
			wantStatus(t, err, 409) // must go through INITIALIZING first
		} else {
			t.Fatal("Phase PREPARING -> PLANNING accepted")
		}
		committed := time.Date(2024, 5, 6, 7, 8, 9, 0, time.UTC)
		if err := c.Phase(ctx, job, workerapi.PhaseRequest{State: run.Initializing, CommitSHA: strings.Repeat("feedface", 5), CommitMessage: "bump",
			CommitAuthor: "Ada", CommitAt: committed.UnixNano()}); err != nil {
			t.Fatalf("Phase INITIALIZING: %v", err)
		}
		if got := f.wantState(t, r.ID, run.Initializing); got.CommitSHA != strings.Repeat("feedface", 5) || got.CommitMessage != "bump" || got.WorkerID != reg.WorkerID ||
			got.CommitAuthor != "Ada" || !got.CommitAt.Equal(committed) {
			t.Fatalf("run after phase = %+v", got)
		}
		if err := c.Phase(ctx, job, workerapi.PhaseRequest{State: run.Planning}); err != nil {
			t.Fatalf("Phase PLANNING: %v", err)
		}

		// Logs: idempotent by offset, gaps refused.
		for _, l := range []struct {
			offset int64
			data   string
			status int
		}{{0, "init\n", 0}, {0, "init\n", 0}, {5, "plan\n", 0}, {20, "gap", 409}, {-1, "x", 400}} {
			err := c.AppendLog(ctx, job, l.offset, []byte(l.data))
			if l.status == 0 && err != nil {
				t.Fatalf("AppendLog(%d): %v", l.offset, err)
			}
			if l.status != 0 {
				wantStatus(t, err, l.status)
			}
		}
		if data, _, err := f.runs.ReadLog(ctx, r.ID, 0, 100, 0); err != nil || string(data) != "init\nplan\n" {
			t.Fatalf("log = %q, %v", data, err)
		}

		// Artifacts.
		wantStatus(t, putArtifact(c, ctx, job, run.ArtifactPlanJSON, []byte("{not json")), 400)
		wantStatus(t, putArtifact(c, ctx, job, "secrets.txt", []byte("x")), 400)
		plan := []byte(`{"resource_changes":[]}`)
		if err := putArtifact(c, ctx, job, run.ArtifactPlanJSON, plan); err != nil {
			t.Fatalf("PutArtifact: %v", err)
		}
		if got, err := c.GetArtifact(ctx, job, run.ArtifactPlanJSON); err != nil || !bytes.Equal(got, plan) {
			t.Fatalf("GetArtifact = %q, %v", got, err)
		}
		_, err := c.GetArtifact(ctx, job, run.ArtifactWorkspace)
		wantStatus(t, err, 404)

		if hb, err := c.Heartbeat(ctx, job); err != nil || hb.Stop {
			t.Fatalf("Heartbeat = %+v, %v", hb, err)
		}
		next, err := c.Planned(ctx, job, workerapi.PlannedRequest{HasChanges: true, Add: 1, Change: 2, Destroy: 3})
		if err != nil || next.Next != run.NextSave {
			t.Fatalf("Planned = %+v, %v; want save", next, err)
		}
		if got := f.wantState(t, r.ID, run.Planning); got.Delta != (run.Delta{Add: 1, Change: 2, Destroy: 3}) || !got.HasChanges {
			t.Fatalf("delta = %+v", got.Delta)
		}
		wantStatus(t, c.HandOff(ctx, job), 409) // no workspace yet
		workspace := bytes.Repeat([]byte{0, 1, 2, 0xff}, 4096)
		if err := putArtifact(c, ctx, job, run.ArtifactWorkspace, workspace); err != nil {
			t.Fatalf("PutArtifact(workspace): %v", err)
		}
		if err := c.HandOff(ctx, job); err != nil {
			t.Fatalf("HandOff: %v", err)
		}
		if got := f.wantState(t, r.ID, run.Unconfirmed); got.WorkerID != "" {
			t.Fatalf("handed-off run held by %q", got.WorkerID)
		}
		// The plan job's token is spent.
		_, err = c.Heartbeat(ctx, job)
		wantStatus(t, err, 401)
		wantStatus(t, c.Phase(ctx, job, workerapi.PhaseRequest{State: run.Initializing}), 401)
		_, err = c.GetArtifact(ctx, job, run.ArtifactWorkspace)
		wantStatus(t, err, 401)

		if j, err := c.Claim(ctx, 0); err != nil || j != nil {
			t.Fatalf("claimed %+v, %v while the run waits for confirmation", j, err)
		}
		if _, err := f.runs.Confirm(ctx, r.ID, "bob"); err != nil {
			t.Fatal(err)
		}
		apply := claim(t, c)
		if apply.RunID != r.ID || apply.Kind != run.KindApply || apply.LogOffset != int64(len("init\nplan\n")) || apply.Token == job.Token {
			t.Fatalf("apply job = %+v", apply)
		}
		f.wantState(t, r.ID, run.Applying)
		if got, err := c.GetArtifact(ctx, apply, run.ArtifactWorkspace); err != nil || !bytes.Equal(got, workspace) {
			t.Fatalf("apply job's workspace = %d bytes, %v", len(got), err)
		}
		if err := c.AppendLog(ctx, apply, apply.LogOffset, []byte("apply\n")); err != nil {
			t.Fatal(err)
		}
		if err := c.Finish(ctx, apply, workerapi.FinishRequest{OK: true, Reason: "applied"}); err != nil {
			t.Fatalf("Finish: %v", err)
		}
		if got := f.wantState(t, r.ID, run.Finished); got.Reason != "applied" {
			t.Fatalf("reason = %q", got.Reason)
		}

		// After the end: the heartbeat says stop; everything else is refused.
		hb, err := c.Heartbeat(ctx, apply)
		if err != nil || !hb.Stop || !strings.Contains(hb.Reason, run.Finished) {
			t.Fatalf("Heartbeat after finish = %+v, %v; want stop", hb, err)
		}
		wantStatus(t, c.Finish(ctx, apply, workerapi.FinishRequest{OK: false}), 401)
		wantStatus(t, c.Phase(ctx, apply, workerapi.PhaseRequest{State: run.Initializing}), 401)
		wantStatus(t, putArtifact(c, ctx, apply, run.ArtifactWorkspace, []byte("late")), 401)
		_, err = c.GetArtifact(ctx, apply, run.ArtifactPlanJSON)
		wantStatus(t, err, 401)
		// (planned takes the token of a run that ended, to answer a retried
		// report that ended it; this one did not.)
		_, err = c.Planned(ctx, apply, workerapi.PlannedRequest{HasChanges: true})
		wantStatus(t, err, 409)
		wantStatus(t, c.HandOff(ctx, apply), 401)
		f.wantState(t, r.ID, run.Finished)
	})
}

func TestAutodeployAndNoChanges(t *testing.T) {
	tests := []struct {
		name       string
		autodeploy bool
		typ        string
		changes    bool
		next       string
		state      string // after Planned
	}{
		{"autodeploy", true, run.Tracked, true, run.NextApply, run.Applying},
		{"no changes", false, run.Tracked, false, run.NextDone, run.Finished},
		{"proposed", true, run.Proposed, true, run.NextDone, run.Finished},
	}
	dbtest.Each(t, func(t *testing.T, d *db.DB) {
		f := newFixture(t, d)
		c, _ := f.worker(t, builtinToken)
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				st := f.stack(t, func(s *stack.Stack) { s.Autodeploy = tt.autodeploy })
				r := f.create(t, st.ID, tt.typ)
				job := claim(t, c)
				for _, p := range []string{run.Initializing, run.Planning} {
					if err := c.Phase(f.ctx, job, workerapi.PhaseRequest{State: p}); err != nil {
						t.Fatalf("Phase %s: %v", p, err)
					}
				}
				next, err := c.Planned(f.ctx, job, workerapi.PlannedRequest{HasChanges: tt.changes, Add: 1})
				if err != nil || next.Next != tt.next {
					t.Fatalf("Planned = %+v, %v; want %s", next, err, tt.next)
				}
				f.wantState(t, r.ID, tt.state)
				if tt.state == run.Applying {
					if hb, err := c.Heartbeat(f.ctx, job); err != nil || hb.Stop {
						t.Fatalf("Heartbeat while applying = %+v, %v", hb, err)
					}
					if err := c.Finish(f.ctx, job, workerapi.FinishRequest{OK: false, Reason: "apply failed: quota"}); err != nil {
						t.Fatalf("Finish: %v", err)
					}
					if got := f.wantState(t, r.ID, run.Failed); got.Reason != "apply failed: quota" {
						t.Fatalf("reason = %q", got.Reason)
					}
				}
				if hb, err := c.Heartbeat(f.ctx, job); err != nil || !hb.Stop {
					t.Fatalf("Heartbeat after the run ended = %+v, %v; want stop", hb, err)
				}
				wantStatus(t, c.Finish(f.ctx, job, workerapi.FinishRequest{OK: true}), 401)
			})
		}
	})
}

func TestJobTokenScope(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, d *db.DB) {
		f := newFixture(t, d)
		c, _ := f.worker(t, builtinToken)
		ra := f.create(t, f.stack(t, nil).ID, run.Tracked)
		rb := f.create(t, f.stack(t, nil).ID, run.Tracked)
		ja, jb := claim(t, c), claim(t, c)
		if ja.RunID != ra.ID || jb.RunID != rb.ID {
			t.Fatalf("claimed %s, %s", ja.RunID, jb.RunID)
		}
		// Run B addressed with run A's token.
		cross := &workerapi.Job{RunID: rb.ID, Token: ja.Token}
		wantStatus(t, c.Phase(f.ctx, cross, workerapi.PhaseRequest{State: run.Initializing}), 403)
		_, err := c.Heartbeat(f.ctx, cross)
		wantStatus(t, err, 403)
		wantStatus(t, c.Finish(f.ctx, cross, workerapi.FinishRequest{OK: false}), 403)
		wantStatus(t, c.AppendLog(f.ctx, cross, 0, []byte("x")), 403)
		_, err = c.GetArtifact(f.ctx, cross, run.ArtifactPlanJSON)
		wantStatus(t, err, 403)
		f.wantState(t, rb.ID, run.Preparing)
		if got, _, _ := f.runs.ReadLog(f.ctx, rb.ID, 0, 10, 0); len(got) != 0 {
			t.Fatalf("run B's log was written with run A's token: %q", got)
		}

		// Tampered, missing and worker tokens are not job tokens.
		for _, token := range []string{ja.Token + "x", ja.Token[:len(ja.Token)-1], "", "gjt_" + rb.ID + "_" + ja.Token[strings.LastIndexByte(ja.Token, '_')+1:]} {
			bad := &workerapi.Job{RunID: rb.ID, Token: token}
			_, err := c.Heartbeat(f.ctx, bad)
			wantStatus(t, err, 401)
		}
		// The worker's own token does not act on jobs either.
		reg := workerapi.NewClient(f.url, builtinToken)
		resp, err := reg.Register(f.ctx, workerapi.RegisterRequest{Name: "w2", Version: workerapi.Version})
		if err != nil {
			t.Fatal(err)
		}
		_, err = c.Heartbeat(f.ctx, &workerapi.Job{RunID: ra.ID, Token: resp.Token})
		wantStatus(t, err, 401)
	})
}

func TestStopThroughHeartbeat(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, d *db.DB) {
		f := newFixture(t, d)
		c, _ := f.worker(t, builtinToken)
		st := f.stack(t, nil)
		r := f.create(t, st.ID, run.Tracked)
		next := f.create(t, st.ID, run.Tracked)
		job := claim(t, c)
		if err := c.Phase(f.ctx, job, workerapi.PhaseRequest{State: run.Initializing}); err != nil {
			t.Fatal(err)
		}
		if _, err := f.runs.Stop(f.ctx, r.ID, "bob"); err != nil {
			t.Fatal(err)
		}
		hb, err := c.Heartbeat(f.ctx, job)
		if err != nil || !hb.Stop || !strings.Contains(hb.Reason, "bob") || hb.State != run.Stopped {
			t.Fatalf("Heartbeat after stop = %+v, %v; want stop, by bob, ending STOPPED", hb, err)
		}
		// Told to stop, the worker reports the end of its job: accepted as
		// the end (the run becomes STOPPED) or refused (it already is).
		if err := c.Finish(f.ctx, job, workerapi.FinishRequest{OK: true}); err != nil {
			wantStatus(t, err, 401)
		}
		if got := f.wantState(t, r.ID, run.Stopped); got.Reason != "stopped by bob" {
			t.Fatalf("reason = %q", got.Reason)
		}
		wantStatus(t, c.Phase(f.ctx, job, workerapi.PhaseRequest{State: run.Planning}), 401)
		wantStatus(t, c.Finish(f.ctx, job, workerapi.FinishRequest{OK: true}), 401)
		if hb, err := c.Heartbeat(f.ctx, job); err != nil || !hb.Stop || hb.State != run.Stopped {
			t.Fatalf("Heartbeat of the stopped run = %+v, %v", hb, err)
		}
		// The stack went to the next run, which the worker can claim.
		if j := claim(t, c); j.RunID != next.ID {
			t.Fatalf("claimed %s, want %s", j.RunID, next.ID)
		}
	})
}

// onFirstRead is a request body that calls fn when it is first read, that
// is, once the handler has accepted the request and reads its body.
type onFirstRead struct {
	r    io.Reader
	once sync.Once
	fn   func()
}

func (b *onFirstRead) Read(p []byte) (int, error) {
	b.once.Do(b.fn)
	return b.r.Read(p)
}

// TestWorkspaceUploadRacingEnd: the run ends while its worker uploads the
// saved workspace (the job token was checked when the upload began): a
// person stops it, or the server fails it as lost. Once the run has ended
// it must not keep a workspace that nothing will ever delete: the workspace
// holds the code, the providers and a plan with secret values.
func TestWorkspaceUploadRacingEnd(t *testing.T) {
	tests := []struct {
		name  string
		end   func(f *fixture, runID string) error
		state string
	}{
		{"stopped by a person", func(f *fixture, runID string) error {
			_, err := f.runs.Stop(f.ctx, runID, "bob")
			return err
		}, run.Stopped},
		{"failed as lost", func(f *fixture, runID string) error {
			n, err := f.runs.FailLost(f.ctx, run.Lost{Before: time.Now().Add(time.Hour), Reason: "worker lost"})
			if err == nil && n != 1 {
				err = fmt.Errorf("FailLost failed %d runs, want 1", n)
			}
			return err
		}, run.Failed},
	}
	dbtest.Each(t, func(t *testing.T, d *db.DB) {
		f := newFixture(t, d)
		c, _ := f.worker(t, builtinToken)
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				r := f.create(t, f.stack(t, nil).ID, run.Tracked)
				job := claim(t, c)
				for _, p := range []string{run.Initializing, run.Planning} {
					if err := c.Phase(f.ctx, job, workerapi.PhaseRequest{State: p}); err != nil {
						t.Fatal(err)
					}
				}
				if next, err := c.Planned(f.ctx, job, workerapi.PlannedRequest{HasChanges: true, Add: 1}); err != nil || next.Next != run.NextSave {
					t.Fatalf("Planned = %+v, %v", next, err)
				}

				data := bytes.Repeat([]byte("workspace "), 1000)
				var endErr error
				body := &onFirstRead{r: bytes.NewReader(data), fn: func() { endErr = tt.end(f, r.ID) }}
				req, err := http.NewRequest("PUT", f.url+workerapi.Prefix+"/jobs/"+r.ID+"/artifacts/"+run.ArtifactWorkspace, body)
				if err != nil {
					t.Fatal(err)
				}
				req.ContentLength = int64(len(data))
				req.Header.Set("Authorization", "Bearer "+job.Token)
				req.Header.Set("Content-Type", "application/octet-stream")
				// The client sends the body only once the handler reads it
				// (after authenticating the job): the end lands mid-upload.
				req.Header.Set("Expect", "100-continue")
				hc := &http.Client{Transport: &http.Transport{ExpectContinueTimeout: patience}}
				resp, err := hc.Do(req)
				if err != nil {
					t.Fatalf("upload: %v", err)
				}
				resp.Body.Close()
				if endErr != nil {
					t.Fatalf("ending the run during the upload: %v", endErr)
				}
				// A worker told to stop by its heartbeat reports the end of
				// its job, unless the server already ended the run.
				if hb, err := c.Heartbeat(f.ctx, job); err != nil || !hb.Stop {
					t.Fatalf("Heartbeat after the end = %+v, %v", hb, err)
				}
				if err := c.Finish(f.ctx, job, workerapi.FinishRequest{OK: false, Reason: "interrupted"}); err != nil {
					wantStatus(t, err, 401)
				}
				f.wantState(t, r.ID, tt.state)
				var n int
				if err := d.QueryRow(f.ctx, `SELECT COUNT(*) FROM run_artifacts WHERE run_id = $1 AND name = 'workspace'`, r.ID).Scan(&n); err != nil {
					t.Fatal(err)
				}
				if n != 0 {
					t.Fatalf("the upload answered HTTP %d and the %s run keeps %d workspace artifact(s); want the late upload refused and none kept", resp.StatusCode, tt.state, n)
				}
			})
		}
	})
}

// TestStopDuringSave: the worker saves the workspace and hands off, as it
// does right after Planned answered "save", while a person stops the run.
// The run must end STOPPED (RUNS.md: PLANNING, stop, STOPPED), not wait for
// a confirmation.
func TestStopDuringSave(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, d *db.DB) {
		f := newFixture(t, d)
		c, _ := f.worker(t, builtinToken)
		r := f.create(t, f.stack(t, nil).ID, run.Tracked)
		job := claim(t, c)
		for _, p := range []string{run.Initializing, run.Planning} {
			if err := c.Phase(f.ctx, job, workerapi.PhaseRequest{State: p}); err != nil {
				t.Fatal(err)
			}
		}
		if next, err := c.Planned(f.ctx, job, workerapi.PlannedRequest{HasChanges: true, Add: 1}); err != nil || next.Next != run.NextSave {
			t.Fatalf("Planned = %+v, %v", next, err)
		}
		if _, err := f.runs.Stop(f.ctx, r.ID, "bob"); err != nil {
			t.Fatal(err)
		}
		// Refusals are fine here; what counts is where the run ends.
		_ = putArtifact(c, f.ctx, job, run.ArtifactWorkspace, []byte("workspace"))
		_ = c.HandOff(f.ctx, job)
		got := f.get(t, r.ID)
		if got.State == run.Unconfirmed {
			t.Fatalf("the run stopped by bob is UNCONFIRMED after the hand-off: the stop was lost")
		}
		if !run.Terminal(got.State) {
			if hb, err := c.Heartbeat(f.ctx, job); err != nil || !hb.Stop {
				t.Fatalf("Heartbeat after stop = %+v, %v", hb, err)
			}
			if err := c.Finish(f.ctx, job, workerapi.FinishRequest{OK: false, Reason: "interrupted"}); err != nil {
				t.Fatalf("Finish: %v", err)
			}
		}
		f.wantState(t, r.ID, run.Stopped)
	})
}

// A register request with fields this server does not know (from a worker
// of a newer release) is accepted, the fields ignored, on both databases:
// servers accept newer workers as well as older ones through an upgrade.
func TestRegisterIgnoresUnknownFields(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, d *db.DB) {
		f := newFixture(t, d)
		body := `{"name": "newer", "version": 1, "tools": {"gantry": "v9.9.9"}, "capabilities": {"x": [1]}, "release": "v9.9.9"}`
		req, _ := http.NewRequest("POST", f.url+workerapi.Prefix+"/register", strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+gpuToken)
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusCreated {
			t.Fatalf("register with unknown fields: HTTP %d %s", resp.StatusCode, b)
		}
		// Malformed JSON and wrong types are still refused.
		for _, bad := range []string{`{"name": "x", "version": 1, "tools": []}`, `{"name": "x", "version": 1,`} {
			req, _ := http.NewRequest("POST", f.url+workerapi.Prefix+"/register", strings.NewReader(bad))
			req.Header.Set("Authorization", "Bearer "+gpuToken)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusBadRequest {
				t.Errorf("register %s: HTTP %d, want 400", bad, resp.StatusCode)
			}
		}
	})
}

// The register request's fields are those servers since the release that
// added features (944f6b8) know: servers until this one refuse a field
// they do not know (400 unknown field), so a new field would make new
// workers unusable with them. What a worker adds goes in an existing map
// (its release is in tools, see ToolGantry) or, when servers of the
// releases without it are no longer supported, in a field of its own.
func TestRegisterRequestFieldsOlderServersKnow(t *testing.T) {
	known := []string{"concurrency", "features", "instance", "labels", "name", "public_key", "tools", "version"}
	var got []string
	for f := range reflect.TypeFor[workerapi.RegisterRequest]().Fields() {
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		got = append(got, name)
	}
	slices.Sort(got)
	if !slices.Equal(got, known) {
		t.Errorf("RegisterRequest's JSON fields = %v, want %v: servers before this release refuse a register request with another field", got, known)
	}
}
