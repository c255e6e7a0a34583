package integration_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/gantry-iac/gantry/internal/errs"
	"github.com/gantry-iac/gantry/internal/integration"
)

// TestMintFailureKinds: a cloud's refusal (4xx) is the run's trust being
// wrong (Invalid); a cloud that cannot be reached, throttles or fails
// (5xx) is Unavailable, not a mistake of the run's (or the worker's).
func TestMintFailureKinds(t *testing.T) {
	answer := func(status int) string {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(status)
			_, _ = w.Write([]byte(`{"errors": ["no"], "error": "no", "error_description": "no"}`))
		}))
		t.Cleanup(srv.Close)
		return srv.URL
	}
	gone := httptest.NewServer(http.NotFoundHandler())
	gone.Close()
	const guid = "00000000-0000-0000-0000-000000000001"
	integrations := map[string]func(url string) integration.Integration{
		"aws": func(url string) integration.Integration {
			return integration.Integration{ID: "i", Type: integration.AWS, Config: map[string]string{
				"role_arn": "arn:aws:iam::123456789012:role/r", "sts_endpoint": url}}
		},
		"vault": func(url string) integration.Integration {
			return integration.Integration{ID: "i", Type: integration.Vault, Config: map[string]string{"address": url, "role": "r"}}
		},
		"gcp": func(url string) integration.Integration {
			return integration.Integration{ID: "i", Type: integration.GCP, Config: map[string]string{
				"workload_identity_provider": "projects/1/locations/global/workloadIdentityPools/pool1/providers/prov1",
				"service_account":            "gantry@p.iam.gserviceaccount.com", "sts_endpoint": url + "/v1/token", "iam_credentials_endpoint": url}}
		},
		"azure": func(url string) integration.Integration {
			return integration.Integration{ID: "i", Type: integration.Azure, Config: map[string]string{
				"tenant_id": guid, "client_id": guid, "access_token": "true", "authority": url}}
		},
	}
	cases := []struct {
		name string
		url  string
		want errs.Kind
	}{
		{"unreachable", gone.URL, errs.Unavailable},
		{"503", answer(http.StatusServiceUnavailable), errs.Unavailable},
		{"429", answer(http.StatusTooManyRequests), errs.Unavailable},
		{"403", answer(http.StatusForbidden), errs.Invalid},
	}
	minters := integration.Builtin()
	for typ, mk := range integrations {
		for _, c := range cases {
			t.Run(typ+"/"+c.name, func(t *testing.T) {
				t.Parallel()
				in := mk(c.url)
				if err := minters[typ].Validate(in.Config); err != nil {
					t.Fatal(err)
				}
				r := integration.Request{RunID: "run-01K", StackID: "net", SpaceID: "root", Scope: "read",
					Token: func(context.Context, string) (string, error) { return "a.b.c", nil }}
				_, err := minters[typ].Mint(context.Background(), in, r)
				if errs.KindOf(err) != c.want || !strings.HasPrefix(errs.Public(err), "integration i: ") {
					t.Errorf("Mint = %v (%s), want %s", err, errs.KindOf(err), c.want)
				}
			})
		}
	}
}
