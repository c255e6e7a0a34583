package api_test

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/gantry-iac/gantry/internal/api"
	"github.com/gantry-iac/gantry/internal/apiv1"
	"github.com/gantry-iac/gantry/internal/runtoken"
)

// The Vault setup's bound_claims glob covers every run type and scope of
// the stack whatever the subject template (it assumed the default's
// ":scope:read" ending and printed, for others, a glob matching the read
// subject only).
func TestOIDCSetupVaultGlobFollowsTheTemplate(t *testing.T) {
	tokens, err := runtoken.New(nil, nil, runtoken.Config{Issuer: "https://gantry.example", Subject: "{spaceId}/{stackId}/{scope}/{runType}"})
	if err != nil {
		t.Fatal(err)
	}
	sub := func(spaceID, stackID, runType, scope string) string {
		return tokens.Subject(runtoken.Run{SpaceID: spaceID, StackID: stackID, RunID: "*", RunType: runType, Scope: scope})
	}
	e := newRBACEnv(t, func(a *api.API) {
		a.SubjectFor = func(_ context.Context, spaceID, stackID, runType, scope string) string {
			return sub(spaceID, stackID, runType, scope)
		}
		a.TokenSubject = func(_ context.Context, spaceID, stackID string) (string, string, string) {
			return "https://gantry.example", sub(spaceID, stackID, "*", runtoken.Read), sub(spaceID, stackID, "*", runtoken.Write)
		}
	})
	f := e.fixture(1)
	var out apiv1.OIDCSetup
	e.must(e.do("GET", "/api/v1/oidc-setup?provider=vault&stack="+f.stack, nil), http.StatusOK, &out)
	want := `bound_claims='{"sub":"` + f.space + "/" + f.stack + `/*/*"}'`
	if !strings.Contains(out.Instructions, want) {
		raw, _ := json.Marshal(out)
		t.Errorf("vault setup %s, want %s", raw, want)
	}
}
