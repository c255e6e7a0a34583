package worker

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gantry-iac/gantry/internal/state"
	"github.com/gantry-iac/gantry/internal/workerapi"
)

// The rescue of a state OpenTofu could not save (errored.tfstate).

// OpenTofu writes errored.tfstate when it cannot save the state after an
// apply: the only copy of what the apply made. The worker keeps it outside
// the job directory it removes and says where in the run's log.
func TestJobRescuesErroredState(t *testing.T) {
	fx := newJobFixture(t, nil)
	// Out of the work directory, which a restarted worker clears.
	fx.worker.cfg.RescueDir = filepath.Join(t.TempDir(), "rescued")
	job := fx.job("plan")
	job.Env = append(job.Env, workerapi.EnvVar{Name: "FAKE_APPLY_ERRORED", Value: "1"})
	fx.proto.next = "apply"
	fx.worker.execute(context.Background(), job, 0)
	p := fx.proto
	if len(p.finishes) != 1 || p.finishes[0].OK {
		t.Fatalf("Finish = %+v, want one failed finish", p.finishes)
	}
	path := filepath.Join(fx.worker.cfg.RescueDir, job.RunID+".tfstate")
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("the errored state was not kept: %v", err)
	}
	if got := strings.TrimSpace(string(data)); got != `{"version":4,"serial":7}` {
		t.Errorf("kept state = %q", got)
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("kept state mode = %v (%v), want 0600", fi.Mode().Perm(), err)
	}
	log := p.log(t, 0)
	if !strings.Contains(log, path) || !strings.Contains(log, "tofu state push") {
		t.Errorf("log does not say where the state is kept and how to push it:\n%s", log)
	}
	if !strings.Contains(log, "[gantry] Run failed: ") {
		t.Errorf("log lacks the failure line:\n%s", log)
	}
	// The reason says it too: the log may not reach the server.
	if r := p.finishes[0].Reason; !strings.Contains(r, "OpenTofu could not save the state: it is kept on worker test at "+path) {
		t.Errorf("reason = %q, want it to say where the state is kept", r)
	}
	// The job directory itself is gone.
	if ents, _ := filepath.Glob(filepath.Join(fx.work, "gantry-job-*")); len(ents) != 0 {
		t.Errorf("job directories left: %v", ents)
	}
}

// A state OpenTofu could not save because the server refused it as larger
// than its state size limit cannot be pushed as it is either: the run's
// reason names the limit, and the log says to raise it first, to a size
// that takes the state, then push; past the most any server accepts, it
// says that no push to managed state can work.
func TestJobRescuedStateLargerThanTheLimit(t *testing.T) {
	const kept = `{"version":4,"serial":7}` + "\n" // 25 bytes
	for _, tt := range []struct {
		name    string
		limit   int64 // the job's MaxStateSize
		reason  string
		log     []string
		notLogs []string
	}{
		{"an older server says no limit", 0, "; push it to the stack's state", []string{"Push it to the stack's state with `tofu state push`"}, []string{"--max-state-size"}},
		{"under the limit", 1 << 20, "; push it to the stack's state", []string{"Push it to the stack's state with `tofu state push`"}, []string{"--max-state-size"}},
		{"over the limit", 10,
			"; the state (25 bytes) is larger than the server's state size limit (10 bytes, --max-state-size): raise the limit, then push it to the stack's state",
			[]string{"it is 25 bytes, larger than the server's state size limit of 10 bytes",
				"first raise the limit on the server (`gantry server --max-state-size 1MiB`, or GANTRY_MAX_STATE_SIZE=1MiB, on every server), then push it",
				"`tofu state push`"},
			[]string{"Push it to the stack's state with"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			fx := newJobFixture(t, nil)
			fx.worker.cfg.RescueDir = filepath.Join(t.TempDir(), "rescued")
			job := fx.job("plan")
			job.MaxStateSize = tt.limit
			job.Env = append(job.Env, workerapi.EnvVar{Name: "FAKE_APPLY_ERRORED", Value: "1"})
			fx.proto.next = "apply"
			fx.worker.execute(context.Background(), job, 0)
			if len(fx.proto.finishes) != 1 || fx.proto.finishes[0].OK {
				t.Fatalf("Finish = %+v, want one failed finish", fx.proto.finishes)
			}
			path := filepath.Join(fx.worker.cfg.RescueDir, job.RunID+".tfstate")
			if data, err := os.ReadFile(path); err != nil || string(data) != kept {
				t.Fatalf("kept state = %q, %v", data, err)
			}
			reason := fx.proto.finishes[0].Reason
			want := "apply failed: tofu exited with code 1: Error: Failed to save state; OpenTofu could not save the state: it is kept on worker test at " + path + tt.reason
			if reason != want {
				t.Errorf("reason = %q, want %q", reason, want)
			}
			log := fx.proto.log(t, 0)
			for _, want := range append(tt.log, path) {
				if !strings.Contains(log, want) {
					t.Errorf("log lacks %q:\n%s", want, log)
				}
			}
			for _, no := range tt.notLogs {
				if strings.Contains(log, no) {
					t.Errorf("log has %q:\n%s", no, log)
				}
			}
		})
	}
}

// Past the most a server accepts, raising the limit cannot help: the
// advice says so instead.
func TestStateTooLargeAdvice(t *testing.T) {
	if maxStateSizeLimit != state.MaxSizeLimit {
		t.Fatalf("maxStateSizeLimit = %d, state.MaxSizeLimit = %d: keep them equal", maxStateSizeLimit, state.MaxSizeLimit)
	}
	got := stateTooLargeAdvice("w1", "/r/run.tfstate", 300<<20, 256<<20)
	for _, want := range []string{"it is 300 MiB (314572800 bytes), larger than the server's state size limit of 256 MiB",
		"--max-state-size 512MiB", "GANTRY_MAX_STATE_SIZE=512MiB", "worker w1 at /r/run.tfstate"} {
		if !strings.Contains(got, want) {
			t.Errorf("advice lacks %q:\n%s", want, got)
		}
	}
	got = stateTooLargeAdvice("w1", "/r/run.tfstate", 1100<<20, 1000<<20)
	for _, want := range []string{"larger than any Gantry server accepts (1000 MiB)", "cannot be pushed to the stack's managed state", "keep that file safe"} {
		if !strings.Contains(got, want) {
			t.Errorf("advice lacks %q:\n%s", want, got)
		}
	}
	if strings.Contains(got, "first raise the limit") {
		t.Errorf("advice says to raise a limit that cannot go high enough:\n%s", got)
	}
}

// When OpenTofu could not write errored.tfstate either (a full disk leaves
// it empty or cut short), the log does not claim the state was kept: it
// says plainly that it was not, and points to OpenTofu's own messages. An
// empty file is not copied; a truncated one is kept under a name that does
// not pass for a state.
func TestJobErroredStateNotWritten(t *testing.T) {
	for _, tt := range []struct {
		name, errored, wantKept, wantLog string
	}{
		{"empty", "empty", "", "(it is empty; a full disk?)"},
		{"truncated", "truncated", `{"version":4,"ser`, "(it is not a complete state (17 bytes, cut short); a full disk?)"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			fx := newJobFixture(t, nil)
			fx.worker.cfg.RescueDir = filepath.Join(t.TempDir(), "rescued")
			job := fx.job("plan")
			job.Env = append(job.Env, workerapi.EnvVar{Name: "FAKE_APPLY_ERRORED", Value: tt.errored})
			fx.proto.next = "apply"
			fx.worker.execute(context.Background(), job, 0)
			if len(fx.proto.finishes) != 1 || fx.proto.finishes[0].OK {
				t.Fatalf("Finish = %+v, want one failed finish", fx.proto.finishes)
			}
			log := fx.proto.log(t, 0)
			for _, want := range []string{tt.wantLog, "the state this apply produced could not be kept", "See OpenTofu's errors above"} {
				if !strings.Contains(log, want) {
					t.Errorf("log lacks %q:\n%s", want, log)
				}
			}
			if strings.Contains(log, "the new state is kept") || strings.Contains(log, "Push it to the stack's state") {
				t.Errorf("log claims a rescue that did not happen:\n%s", log)
			}
			// The run's reason says it too (the log may not reach a server
			// whose disk is full; the reason is retried with the job's end),
			// and so does the closing line.
			reason := fx.proto.finishes[0].Reason
			if !strings.Contains(reason, "OpenTofu could not save the state, nor write it whole to errored.tfstate") ||
				!strings.Contains(reason, "the state this apply produced was not kept") || strings.Contains(reason, "is kept on worker") {
				t.Errorf("reason = %q, want it to say that the state was not kept", reason)
			}
			if !strings.Contains(log, "[gantry] Run failed: "+reason) {
				t.Errorf("log does not end with the reason %q:\n%s", reason, log)
			}
			kept, _ := filepath.Glob(filepath.Join(fx.worker.cfg.RescueDir, "*"))
			switch {
			case tt.wantKept == "" && len(kept) != 0:
				t.Errorf("files kept: %v, want none", kept)
			case tt.wantKept != "":
				want := filepath.Join(fx.worker.cfg.RescueDir, job.RunID+".tfstate.incomplete")
				if data, err := os.ReadFile(want); err != nil || string(data) != tt.wantKept {
					t.Errorf("kept %v; %s holds %q (%v), want %q", kept, want, data, err, tt.wantKept)
				}
				if !strings.Contains(log, want) {
					t.Errorf("log does not say where the incomplete file is:\n%s", log)
				}
			}
		})
	}
}
