package integration_test

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gantry-iac/gantry/internal/db"
	"github.com/gantry-iac/gantry/internal/db/dbtest"
	"github.com/gantry-iac/gantry/internal/errs"
	"github.com/gantry-iac/gantry/internal/fakes/fakeentra"
	"github.com/gantry-iac/gantry/internal/integration"
	"github.com/gantry-iac/gantry/internal/secrets"
	"github.com/gantry-iac/gantry/internal/space"
	"github.com/gantry-iac/gantry/internal/stack"
)

// TestManagedSecretsLifecycle: Gantry makes, rotates and removes an Azure
// application's client secrets through Microsoft Graph without holding a
// database transaction meanwhile (other writers go on while Graph
// answers); a secret it could not keep is removed at Microsoft; deleting
// the integration removes its secrets there first, and deletes nothing
// when Microsoft refuses.
func TestManagedSecretsLifecycle(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, d *db.DB) {
		ctx := context.Background()
		const tenant, app, admin = "11111111-2222-3333-4444-555555555555", "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee", "99999999-8888-7777-6666-555555555555"
		fake := fakeentra.New(fakeentra.App{Tenant: tenant, ClientID: app},
			fakeentra.App{Tenant: tenant, ClientID: admin, GraphAdmin: true, Secrets: map[string]string{"k0": "admin-secret"}})
		var mu sync.Mutex
		var during func(op string) bool // runs inside Graph's password calls; false: refuse
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			mu.Lock()
			fn := during
			mu.Unlock()
			if op := r.URL.Path[strings.LastIndexByte(r.URL.Path, '/')+1:]; strings.HasSuffix(op, "Password") && fn != nil && !fn(op) {
				w.WriteHeader(http.StatusServiceUnavailable)
				_, _ = w.Write([]byte(`{"error":{"code":"ServiceUnavailable","message":"try later"}}`))
				return
			}
			fake.ServeHTTP(w, r)
		}))
		t.Cleanup(srv.Close)
		setDuring := func(fn func(op string) bool) {
			mu.Lock()
			during = fn
			mu.Unlock()
		}
		box, _ := secrets.NewBox(bytes.Repeat([]byte{7}, 32))
		spaces := space.NewService(d)
		if err := spaces.EnsureRoot(ctx); err != nil {
			t.Fatal(err)
		}
		s := integration.New(d, spaces, stack.NewService(d, box))
		s.Box = box
		s.Graph = &integration.GraphAdmin{TenantID: tenant, ClientID: admin, ClientSecret: "admin-secret",
			Authority: srv.URL, Endpoint: srv.URL, RotateEvery: time.Hour}
		create := func(id string) {
			t.Helper()
			if _, err := s.Create(ctx, integration.Integration{ID: id, Name: id, Space: "root", Type: integration.Azure,
				Config: map[string]string{integration.AzureTenant: tenant, integration.AzureClient: app, integration.AzureMode: integration.AzureModeManaged}}); err != nil {
				t.Fatal(err)
			}
		}

		// While Graph makes the secret, another transaction writes at once.
		create("az")
		calls := 0
		setDuring(func(op string) bool {
			calls++
			wctx, cancel := context.WithTimeout(ctx, 2*time.Second)
			defer cancel()
			if err := d.Tx(wctx, func(ctx context.Context) error {
				_, err := d.Exec(ctx, `INSERT INTO settings (name, value) VALUES ('graph-test', $1) ON CONFLICT (name) DO UPDATE SET value = excluded.value`, op)
				return err
			}); err != nil {
				t.Errorf("a write while Microsoft Graph answered %s: %v", op, err)
			}
			return true
		})
		if err := s.RotateManaged(ctx); err != nil {
			t.Fatal(err)
		}
		if n := len(fake.Secrets(app)); n != 1 || calls != 1 {
			t.Fatalf("after the first rotation: %d secrets at Microsoft, %d Graph calls", n, calls)
		}
		if err := s.RotateManaged(ctx); err != nil || len(fake.Secrets(app)) != 1 {
			t.Fatalf("a rotation before it is due made a secret: %v, %d secrets", err, len(fake.Secrets(app)))
		}

		// Microsoft refuses to remove the secret: the integration stays.
		setDuring(func(op string) bool { return op != "removePassword" })
		err := s.Delete(ctx, "az")
		if errs.KindOf(err) != errs.Unavailable || !strings.Contains(errs.Public(err), "not deleted") {
			t.Fatalf("Delete while Microsoft refuses = %v", err)
		}
		if _, err := s.Get(ctx, "az"); err != nil {
			t.Fatalf("the integration is gone although its secret was not removed: %v", err)
		}
		// Microsoft answers: the secret goes there, then the integration.
		setDuring(nil)
		if err := s.Delete(ctx, "az"); err != nil {
			t.Fatal(err)
		}
		if n := len(fake.Secrets(app)); n != 0 {
			t.Fatalf("%d secrets left at Microsoft after the integration was deleted", n)
		}
		if _, err := s.Get(ctx, "az"); errs.KindOf(err) != errs.NotFound {
			t.Fatalf("Get after Delete = %v", err)
		}

		// The integration is deleted while Graph makes its secret: the
		// secret cannot be kept, and is removed at Microsoft.
		create("az2")
		setDuring(func(op string) bool {
			if op == "addPassword" {
				if _, err := d.Exec(ctx, `DELETE FROM integrations WHERE id = 'az2'`); err != nil {
					t.Error(err)
				}
			}
			return true
		})
		if err := s.RotateManaged(ctx); err == nil {
			t.Fatal("keeping a secret of a deleted integration succeeded")
		}
		if n := len(fake.Secrets(app)); n != 0 {
			t.Fatalf("%d secrets nobody knows of left at Microsoft", n)
		}
	})
}
