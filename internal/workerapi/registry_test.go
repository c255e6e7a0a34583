package workerapi_test

import (
	"slices"
	"testing"

	"github.com/gantry-iac/gantry/internal/db"
	"github.com/gantry-iac/gantry/internal/db/dbtest"
	"github.com/gantry-iac/gantry/internal/workerapi"
)

// A server's restart recovery (OfInstance, Forget) only ever names that
// server's built-in workers: never private workers, which are stored with
// no instance (an empty instance matches nothing), even one that sends a
// server's instance id at registration.
func TestRegistryInstanceIsBuiltinOnly(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, d *db.DB) {
		f := newFixture(t, d)
		g := workerapi.NewRegistry(d)
		reg := func(pool, instance string) string {
			t.Helper()
			w, _, err := g.Register(f.ctx, pool, workerapi.RegisterRequest{Name: "w", Version: workerapi.Version, Instance: instance}, nil)
			if err != nil {
				t.Fatal(err)
			}
			return w.ID
		}
		builtin := reg("", "srv-a")
		other := reg("", "srv-b")
		private := reg("gpu", "")
		spoof := reg("gpu", "srv-a")

		if got, err := g.OfInstance(f.ctx, "srv-a"); err != nil || !slices.Equal(got, []string{builtin}) {
			t.Errorf("OfInstance(srv-a) = %v, %v; want only the built-in worker %s", got, err, builtin)
		}
		if got, err := g.OfInstance(f.ctx, ""); err != nil || len(got) != 0 {
			t.Errorf("OfInstance(\"\") = %v, %v; want none", got, err)
		}
		if err := g.Forget(f.ctx, ""); err != nil {
			t.Fatal(err)
		}
		if err := g.Forget(f.ctx, "srv-a"); err != nil {
			t.Fatal(err)
		}
		for id, want := range map[string]bool{builtin: false, other: true, private: true, spoof: true} {
			_, err := g.Pool(f.ctx, id)
			if got := err == nil; got != want {
				t.Errorf("worker %s registered after Forget: %v, want %v (err %v)", id, got, want, err)
			}
		}
	})
}
