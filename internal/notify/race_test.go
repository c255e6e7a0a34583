package notify

import (
	"context"
	"fmt"
	"testing"

	"github.com/gantry-iac/gantry/internal/db"
	"github.com/gantry-iac/gantry/internal/db/dbtest"
)

// Two updates of different fields of an endpoint on two replicas at once:
// neither undoes the other; an update while the endpoint is deleted is
// refused by the domain if at all.
func TestEndpointRaces(t *testing.T) {
	const rounds = 40
	dbtest.EachReplicas(t, func(t *testing.T, a, b *db.DB) {
		ctx := context.Background()
		sa, _ := newTestService(t, a)
		sb, _ := newTestService(t, b)
		n := 0
		next := func(t *testing.T) string {
			n++
			e, err := sa.CreateEndpoint(ctx, Endpoint{ID: fmt.Sprintf("e%d", n), SpaceID: "root", Kind: KindWebhook, URL: "http://127.0.0.1:1/hook", Enabled: true})
			if err != nil {
				t.Fatal(err)
			}
			return e.ID
		}
		t.Run("two updates of different fields", func(t *testing.T) {
			for i := range rounds {
				id := next(t)
				retries, enabled := 7, false
				got := dbtest.Race(
					func() error { _, err := sa.UpdateEndpoint(ctx, id, EndpointUpdate{Retries: &retries}); return err },
					func() error { _, err := sb.UpdateEndpoint(ctx, id, EndpointUpdate{Enabled: &enabled}); return err })
				if got[0] != nil || got[1] != nil {
					t.Fatalf("round %d: %v, %v", i, got[0], got[1])
				}
				after, err := sa.GetEndpoint(ctx, id)
				if err != nil {
					t.Fatal(err)
				}
				if after.Retries != 7 || after.Enabled {
					t.Fatalf("round %d: retries %d, enabled %v: one update undid the other", i, after.Retries, after.Enabled)
				}
			}
		})
		t.Run("update while the endpoint is deleted", func(t *testing.T) {
			for i := range rounds {
				id := next(t)
				retries := 3
				got := dbtest.Race(
					func() error { _, err := sa.UpdateEndpoint(ctx, id, EndpointUpdate{Retries: &retries}); return err },
					func() error { return sb.DeleteEndpoint(ctx, id) })
				for _, err := range got {
					if err := dbtest.Lost(err); err != nil {
						t.Fatalf("round %d: %v", i, err)
					}
				}
				if _, err := sa.GetEndpoint(ctx, id); err == nil {
					t.Fatalf("round %d: the endpoint outlived its deletion", i)
				}
			}
		})
	})
}
