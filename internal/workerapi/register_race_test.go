package workerapi_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/gantry-iac/gantry/internal/db"
	"github.com/gantry-iac/gantry/internal/db/dbtest"
	"github.com/gantry-iac/gantry/internal/events"
	"github.com/gantry-iac/gantry/internal/space"
	"github.com/gantry-iac/gantry/internal/workerapi"
	"github.com/gantry-iac/gantry/internal/workerpool"
)

// A worker registering with a pool token while another replica resets
// the pool's token (which disconnects the pool's workers) or deletes the
// pool: no worker registered with the old token is left afterwards, nor
// one of a deleted pool (it would claim the jobs of a later pool of that
// id).
func TestRegisterRacePoolReset(t *testing.T) {
	const rounds = 40
	dbtest.EachReplicas(t, func(t *testing.T, a, b *db.DB) {
		f := newFixture(t, a)
		pa := workerpool.NewService(a, space.NewService(a), events.NewHub())
		pb := workerpool.NewService(b, space.NewService(b), events.NewHub())
		f.handler.PoolForToken = pa.Authenticate
		f.handler.PoolKey = pa.PublicKey
		change := map[string]func(pool string) error{
			"reset":  func(pool string) error { _, err := pb.Reset(f.ctx, pool); return err },
			"delete": func(pool string) error { return pb.Delete(f.ctx, pool) },
		}
		n := 0
		for what, fn := range change {
			t.Run(what, func(t *testing.T) {
				for i := range rounds {
					n++
					pool := fmt.Sprintf("rp%d", n)
					_, token, err := pa.Create(f.ctx, workerpool.Pool{ID: pool})
					if err != nil {
						t.Fatal(err)
					}
					var resp workerapi.RegisterResponse
					got := dbtest.Race(
						func() (err error) {
							resp, err = workerapi.NewClient(f.url+"/", token).Register(context.Background(), workerapi.RegisterRequest{Name: "w", Version: workerapi.Version})
							return err
						},
						func() error { return fn(pool) })
					if got[1] != nil {
						t.Fatalf("round %d: %s: %v", i, what, got[1])
					}
					var left int
					if err := a.QueryRow(f.ctx, `SELECT COUNT(*) FROM workers WHERE pool_id = $1`, pool).Scan(&left); err != nil {
						t.Fatal(err)
					}
					if left > 0 {
						t.Fatalf("round %d: worker %s (register: %v) survived the pool's %s", i, resp.WorkerID, got[0], what)
					}
				}
			})
		}
	})
}
