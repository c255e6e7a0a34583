package workerapi_test

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/gantry-iac/gantry/internal/db"
	"github.com/gantry-iac/gantry/internal/db/dbtest"
	"github.com/gantry-iac/gantry/internal/run"
	"github.com/gantry-iac/gantry/internal/seal"
	"github.com/gantry-iac/gantry/internal/stack"
	"github.com/gantry-iac/gantry/internal/workerapi"
)

// A pool with a key pair gets its secrets sealed to it, and only sealed
// workspaces; what the server stores cannot be opened with the server's
// keys alone.
func TestPoolSealing(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, d *db.DB) {
		f := newFixture(t, d)
		priv, pub, err := seal.GenerateKey()
		if err != nil {
			t.Fatal(err)
		}
		key, _ := seal.ParsePrivateKey(priv)
		f.handler.PoolKey = func(_ context.Context, pool string) (string, error) {
			if pool == "gpu" {
				return pub, nil
			}
			return "", nil
		}
		st := f.stack(t, func(s *stack.Stack) { s.WorkerPool = "gpu" })
		if _, err := f.stacks.SetEnv(f.ctx, st.ID, stack.EnvVar{Name: "DB_PASSWORD", Value: "hunter2-sealed", Secret: true}); err != nil {
			t.Fatal(err)
		}
		if _, err := f.stacks.SetEnv(f.ctx, st.ID, stack.EnvVar{Name: "REGION", Value: "eu-west-1"}); err != nil {
			t.Fatal(err)
		}
		r := f.create(t, st.ID, run.Tracked)
		// A worker without the pool's key, or with another key, is refused
		// and not registered (it would show as an idle worker of the pool).
		otherPriv, _, _ := seal.GenerateKey()
		other, _ := seal.ParsePrivateKey(otherPriv)
		for _, tc := range []struct{ key, want string }{
			{"", "seals its secrets and workspaces to a key pair: start the worker with the pool's private key (GANTRY_PRIVATE_KEY or --private-key-file)"},
			{other.Public(), "the worker's private key does not match worker pool gpu's public key"},
		} {
			refused := workerapi.NewClient(f.url+"/", gpuToken)
			_, err := refused.Register(f.ctx, workerapi.RegisterRequest{Name: "nokey", Version: workerapi.Version, PublicKey: tc.key})
			if se := wantStatus(t, err, 409); !workerapi.Permanent(err) || !strings.Contains(se.Message, tc.want) {
				t.Fatalf("register with key %q: %v, want a permanent 409 with %q", tc.key, err, tc.want)
			}
			if _, err := refused.Claim(f.ctx, 0); err == nil {
				t.Fatal("a refused worker can claim")
			}
		}
		var n int
		if err := f.d.QueryRow(f.ctx, `SELECT COUNT(*) FROM workers WHERE pool_id = $1`, "gpu").Scan(&n); err != nil || n != 0 {
			t.Fatalf("workers registered in pool gpu after the refusals: %d (%v), want 0", n, err)
		}
		c := workerapi.NewClient(f.url+"/", gpuToken)
		if _, err := c.Register(f.ctx, workerapi.RegisterRequest{Name: "keyed", Version: workerapi.Version, PublicKey: key.Public()}); err != nil {
			t.Fatal(err)
		}
		job := claim(t, c)
		if !job.Sealed {
			t.Fatal("the job of a pool with a key is not marked sealed")
		}
		for _, v := range job.Env {
			switch v.Name {
			case "DB_PASSWORD":
				if !v.Sealed || strings.Contains(v.Value, "hunter2") {
					t.Fatalf("secret sent as %+v", v)
				}
				got, err := key.OpenString("env:"+job.RunID+":DB_PASSWORD", v.Value)
				if err != nil || got != "hunter2-sealed" {
					t.Fatalf("open the sealed secret: %q, %v", got, err)
				}
			case "REGION":
				if v.Sealed || v.Value != "eu-west-1" {
					t.Fatalf("a plain variable was sealed: %+v", v)
				}
			}
		}
		// A plain workspace is refused; a sealed one is kept sealed.
		if err := putArtifact(c, f.ctx, job, run.ArtifactWorkspace, []byte("plain tarball")); err == nil || !strings.Contains(err.Error(), "seals workspaces") {
			t.Fatalf("plain workspace upload: %v", err)
		}
		sealed, err := key.PublicKey().Seal("workspace:"+r.ID, []byte("tarball with the plan"))
		if err != nil {
			t.Fatal(err)
		}
		if err := putArtifact(c, f.ctx, job, run.ArtifactWorkspace, sealed); err != nil {
			t.Fatal(err)
		}
		// A pool reset forgets its workers, but their jobs in progress go
		// on with their own tokens: the hand-off still works, and is still
		// held to the pool's key.
		if _, err := f.d.Exec(f.ctx, `DELETE FROM workers WHERE pool_id = $1`, "gpu"); err != nil {
			t.Fatal(err)
		}
		if err := putArtifact(c, f.ctx, job, run.ArtifactWorkspace, sealed); err != nil {
			t.Fatalf("sealed hand-off after the pool's workers were forgotten: %v", err)
		}
		if err := putArtifact(c, f.ctx, job, run.ArtifactWorkspace, []byte("plain tarball")); err == nil || !strings.Contains(err.Error(), "seals workspaces") {
			t.Fatalf("plain workspace upload after the reset: %v", err)
		}
		if _, err := c.Register(f.ctx, workerapi.RegisterRequest{Name: "keyed", Version: workerapi.Version, PublicKey: key.Public()}); err != nil {
			t.Fatal(err)
		}
		// The server's own keys decrypt its storage layer only: what is
		// inside stays sealed to the pool.
		stored, err := f.runs.Artifact(f.ctx, r.ID, run.ArtifactWorkspace)
		if err != nil {
			t.Fatal(err)
		}
		if !seal.IsSealed(stored) || bytes.Contains(stored, []byte("tarball")) {
			t.Fatal("the stored workspace is readable with the server's keys")
		}
		if _, err := other.Open("workspace:"+r.ID, stored); err == nil {
			t.Fatal("another key opened the workspace")
		}
		if pt, err := key.Open("workspace:"+r.ID, stored); err != nil || string(pt) != "tarball with the plan" {
			t.Fatalf("the pool key cannot open its workspace: %v", err)
		}
		// A pool without a key works as before.
		plain := f.stack(t, func(s *stack.Stack) { s.WorkerPool = "" })
		f.create(t, plain.ID, run.Tracked)
		pc, _ := f.worker(t, builtinToken)
		if pj := claim(t, pc); pj.Sealed {
			t.Fatal("a job of a pool without a key is sealed")
		}
		// The pool's key replaced while a worker runs: its claims are
		// refused, and it stops with the reason.
		_, newPub, err := seal.GenerateKey()
		if err != nil {
			t.Fatal(err)
		}
		f.handler.PoolKey = func(_ context.Context, pool string) (string, error) {
			if pool == "gpu" {
				return newPub, nil
			}
			return "", nil
		}
		_, err = c.Claim(f.ctx, 0)
		if se := wantStatus(t, err, 409); !strings.Contains(se.Message, "not its pool's") {
			t.Fatalf("claim after the pool's key was replaced: %v", err)
		}
	})
}

// A job token of an ended run works for the last log lines only for a
// grace period.
func TestEndedRunGrace(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, d *db.DB) {
		f := newFixture(t, d)
		st := f.stack(t, nil)
		f.create(t, st.ID, run.Tracked)
		c, _ := f.worker(t, builtinToken)
		job := claim(t, c)
		if err := c.Finish(f.ctx, job, workerapi.FinishRequest{OK: false, Reason: "boom"}); err != nil {
			t.Fatal(err)
		}
		if err := c.AppendLog(f.ctx, job, job.LogOffset, []byte("last words\n")); err != nil {
			t.Fatalf("a log line right after the end: %v", err)
		}
		old := workerapi.EndedGrace
		workerapi.EndedGrace = 0
		defer func() { workerapi.EndedGrace = old }()
		if err := c.AppendLog(f.ctx, job, job.LogOffset+11, []byte("much later\n")); err == nil {
			t.Fatal("a job token of a run that ended long ago still appends to its log")
		}
	})
}
