package workerpool_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/gantry-iac/gantry/internal/db"
	"github.com/gantry-iac/gantry/internal/db/dbtest"
	"github.com/gantry-iac/gantry/internal/errs"
	"github.com/gantry-iac/gantry/internal/events"
	"github.com/gantry-iac/gantry/internal/seal"
	"github.com/gantry-iac/gantry/internal/space"
	"github.com/gantry-iac/gantry/internal/workerapi"
	"github.com/gantry-iac/gantry/internal/workerpool"
)

func TestMain(m *testing.M) { dbtest.Main(m) }

func TestPools(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, d *db.DB) {
		ctx := context.Background()
		spaces := space.NewService(d)
		if err := spaces.EnsureRoot(ctx); err != nil {
			t.Fatal(err)
		}
		for _, sp := range []space.Space{{ID: "prod", Parent: space.Root, Inherit: true}, {ID: "team", Parent: space.Root}} {
			if _, err := spaces.Create(ctx, sp); err != nil {
				t.Fatal(err)
			}
		}
		s := workerpool.NewService(d, spaces, events.NewHub())
		s.WorkerTimeout = time.Minute
		p, token, err := s.Create(ctx, workerpool.Pool{ID: "eu", Labels: []string{"b", "a"}})
		if err != nil || !strings.HasPrefix(token, "gpt_eu_") || p.Space != space.Root || p.Name != "eu" {
			t.Fatalf("create = %+v %q %v", p, token, err)
		}
		if _, _, err := s.Create(ctx, workerpool.Pool{ID: "eu"}); !errs.Is(err, errs.Conflict) {
			t.Fatalf("duplicate = %v", err)
		}
		if _, _, err := s.Create(ctx, workerpool.Pool{ID: "builtin"}); !errs.Is(err, errs.Invalid) {
			t.Fatalf("pool named builtin = %v", err)
		}
		if got, ok, _ := s.Authenticate(ctx, token); !ok || got != "eu" {
			t.Fatalf("Authenticate = %q %v", got, ok)
		}
		for _, bad := range []string{"", "gpt_eu_x", token + "x", strings.Replace(token, "gpt_eu_", "gpt_other_", 1)} {
			if _, ok, _ := s.Authenticate(ctx, bad); ok {
				t.Errorf("Authenticate(%q) accepted", bad)
			}
		}
		// Usable from the pool's space and spaces inheriting from it only.
		if err := s.Usable(ctx, "eu", "prod"); err != nil {
			t.Errorf("prod inherits from root: %v", err)
		}
		if err := s.Usable(ctx, "eu", "team"); !errs.Is(err, errs.Invalid) {
			t.Errorf("team does not inherit: %v", err)
		}
		if err := s.Usable(ctx, "nope", "root"); !errs.Is(err, errs.Invalid) {
			t.Errorf("unknown pool: %v", err)
		}
		// Workers: registered, idle, drained, gone after reset.
		reg := workerapi.NewRegistry(d)
		w, _, err := reg.Register(ctx, "eu", workerapi.RegisterRequest{Name: "w1", Labels: map[string]string{"region": "eu"}, Concurrency: 2}, nil)
		if err != nil {
			t.Fatal(err)
		}
		ws, err := s.Workers(ctx, "eu")
		if err != nil || len(ws) != 1 || ws[0].Status != workerpool.Idle || ws[0].Labels["region"] != "eu" || ws[0].Concurrency != 2 {
			t.Fatalf("workers = %+v, %v", ws, err)
		}
		if n, _ := s.Connected(ctx, "eu"); n != 1 {
			t.Fatalf("connected = %d", n)
		}
		if err := s.Drain(ctx, "eu", w.ID); err != nil {
			t.Fatal(err)
		}
		if ws, _ := s.Workers(ctx, "eu"); ws[0].Status != workerpool.Drained {
			t.Fatalf("after drain: %+v", ws)
		}
		if n, _ := s.Connected(ctx, "eu"); n != 0 {
			t.Fatalf("a drained worker counts as connected")
		}
		if err := s.Drain(ctx, "other", w.ID); !errs.Is(err, errs.NotFound) {
			t.Fatalf("drain in another pool = %v", err)
		}
		if k, err := s.PruneWorkers(ctx, time.Now().Add(-time.Hour)); err != nil || k != 0 {
			t.Fatalf("pruned a worker seen just now: %d %v", k, err)
		}
		if k, err := s.PruneWorkers(ctx, time.Now().Add(time.Hour)); err != nil || k != 1 {
			t.Fatalf("pruning a silent worker: %d %v", k, err)
		}
		if _, _, err := reg.Register(ctx, "eu", workerapi.RegisterRequest{Name: "w2"}, nil); err != nil {
			t.Fatal(err)
		}
		newToken, err := s.Reset(ctx, "eu")
		if err != nil || newToken == token {
			t.Fatal(err)
		}
		if _, ok, _ := s.Authenticate(ctx, token); ok {
			t.Fatal("the old token still works after reset")
		}
		if ws, _ := s.Workers(ctx, "eu"); len(ws) != 0 {
			t.Fatalf("workers of the old token remain: %+v", ws)
		}
		// Keys.
		if err := s.SetPublicKey(ctx, "eu", "not a key"); !errs.Is(err, errs.Invalid) {
			t.Fatalf("bad key = %v", err)
		}
		_, pub, _ := seal.GenerateKey()
		if err := s.SetPublicKey(ctx, "eu", pub); err != nil {
			t.Fatal(err)
		}
		if got, _ := s.PublicKey(ctx, "eu"); got != pub {
			t.Fatal("public key not stored")
		}
		if got, _ := s.PublicKey(ctx, ""); got != "" {
			t.Fatal("the built-in pool has a key")
		}
		// Delete refused while a stack uses the pool.
		if _, err := d.Exec(ctx, `INSERT INTO stacks (id, name, space_id, repository, branch, tool, worker_pool, created_at, updated_at) VALUES ('s1', 's1', 'root', 'r', 'main', 'opentofu', 'eu', 1, 1)`); err != nil {
			t.Fatal(err)
		}
		if err := s.Delete(ctx, "eu"); !errs.Is(err, errs.Conflict) {
			t.Fatalf("delete in use = %v", err)
		}
		if _, err := d.Exec(ctx, `DELETE FROM stacks WHERE id = 's1'`); err != nil {
			t.Fatal(err)
		}
		if err := s.Delete(ctx, "eu"); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Get(ctx, "eu"); !errs.Is(err, errs.NotFound) {
			t.Fatalf("get after delete = %v", err)
		}
	})
}
