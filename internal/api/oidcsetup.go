package api

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"

	"github.com/gantry-iac/gantry/internal/apiv1"
	"github.com/gantry-iac/gantry/internal/auth"
	"github.com/gantry-iac/gantry/internal/errs"
	"github.com/gantry-iac/gantry/internal/httpx"
	"github.com/gantry-iac/gantry/internal/integration"
)

// oidcSetup answers what to configure on a cloud so that it trusts the
// runs of a stack: ?provider=aws|gcp|azure|vault&stack=S.
func (a *API) oidcSetup(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
	q := r.URL.Query()
	st, err := a.Stacks.Get(r.Context(), q.Get("stack"))
	if err != nil {
		if q.Get("stack") == "" {
			return errs.E(errs.Invalid, "stack is required")
		}
		return err
	}
	if err := auth.Authorize(p, auth.SpaceRead, st.Space); err != nil {
		return hiddenStack(err, st.ID)
	}
	if a.SubjectFor == nil || a.TokenSubject == nil {
		return errs.E(errs.Unavailable, "this server issues no OIDC tokens")
	}
	issuer, read, write := a.TokenSubject(r.Context(), st.Space, st.ID)
	out := apiv1.OIDCSetup{Provider: q.Get("provider"), Issuer: issuer, SubjectRead: read, SubjectWrite: write}
	var b strings.Builder
	switch out.Provider {
	case "aws":
		out.Audience = "sts.amazonaws.com"
		doc, _ := integration.TrustPolicy(integration.Integration{Config: map[string]string{integration.AWSRoleARN: "arn:aws:iam::123456789012:role/placeholder"}},
			issuer, read, write, "", st.ID)
		js, _ := json.MarshalIndent(doc, "", "  ")
		fmt.Fprintf(&b, "1. Create an IAM OIDC identity provider: provider URL %s, audience sts.amazonaws.com\n", issuer)
		fmt.Fprintf(&b, "   aws iam create-open-id-connect-provider --url %s --client-id-list sts.amazonaws.com\n", issuer)
		fmt.Fprintf(&b, "2. Give the role this trust policy (replace 123456789012 by your account id; keep only the read\n")
		fmt.Fprintf(&b, "   subject on a plan-only role, only the write one on an apply-only role):\n%s\n", js)
		fmt.Fprintf(&b, "3. gantry integration create --id ID --space %s --type aws --set role_arn=arn:aws:iam::<account>:role/<role>\n", st.Space)
	case "gcp":
		out.Audience = "//iam.googleapis.com/projects/<number>/locations/global/workloadIdentityPools/gantry/providers/gantry"
		fmt.Fprintf(&b, "gcloud iam workload-identity-pools create gantry --location=global\n")
		fmt.Fprintf(&b, "gcloud iam workload-identity-pools providers create-oidc gantry --location=global --workload-identity-pool=gantry \\\n")
		fmt.Fprintf(&b, "    --issuer-uri=%s --attribute-mapping=google.subject=assertion.sub,attribute.stack=assertion.stackId,attribute.scope=assertion.scope \\\n", issuer)
		fmt.Fprintf(&b, "    --attribute-condition=\"assertion.stackId == '%s'\"\n", st.ID)
		fmt.Fprintf(&b, "gcloud iam service-accounts add-iam-policy-binding <sa>@<project>.iam.gserviceaccount.com --role=roles/iam.workloadIdentityUser \\\n")
		fmt.Fprintf(&b, "    --member=principalSet://iam.googleapis.com/projects/<number>/locations/global/workloadIdentityPools/gantry/attribute.stack/%s\n", st.ID)
		fmt.Fprintf(&b, "gantry integration create --id ID --space %s --type gcp --set workload_identity_provider=projects/<number>/locations/global/workloadIdentityPools/gantry/providers/gantry \\\n", st.Space)
		fmt.Fprintf(&b, "    --set service_account=<sa>@<project>.iam.gserviceaccount.com\n")
	case "azure":
		out.Audience = "api://AzureADTokenExchange"
		fmt.Fprintf(&b, "Entra matches subjects exactly: one federated credential per run type and scope the stack uses.\n")
		for _, c := range []struct{ typ, scope string }{{"PROPOSED", "read"}, {"TRACKED", "read"}, {"TRACKED", "write"}, {"DESTROY", "read"}, {"DESTROY", "write"}, {"TASK", "write"}} {
			sub := a.SubjectFor(r.Context(), st.Space, st.ID, c.typ, c.scope)
			fmt.Fprintf(&b, "az ad app federated-credential create --id <app-id> --parameters '{\"name\":\"gantry-%s-%s-%s\",\"issuer\":\"%s\",\"subject\":\"%s\",\"audiences\":[\"api://AzureADTokenExchange\"]}'\n",
				st.ID, strings.ToLower(c.typ), c.scope, issuer, sub)
			out.Subjects = append(out.Subjects, sub)
		}
		fmt.Fprintf(&b, "gantry integration create --id ID --space %s --type azure --set tenant_id=<tenant> --set client_id=<app-id> --set subscription_id=<subscription>\n", st.Space)
	case "vault":
		out.Audience = "vault"
		fmt.Fprintf(&b, "vault auth enable jwt\n")
		fmt.Fprintf(&b, "vault write auth/jwt/config oidc_discovery_url=%s bound_issuer=%s\n", issuer, issuer)
		fmt.Fprintf(&b, "vault write auth/jwt/role/gantry-%s role_type=jwt user_claim=sub bound_audiences=vault \\\n", st.ID)
		// Every run type and scope of the stack: the template rendered with
		// wildcards, whatever its shape.
		fmt.Fprintf(&b, "    bound_claims_type=glob bound_claims='{\"sub\":\"%s\"}' token_policies=<policy> token_ttl=1h\n",
			a.SubjectFor(r.Context(), st.Space, st.ID, "*", "*"))
		fmt.Fprintf(&b, "gantry integration create --id ID --space %s --type vault --set address=https://<vault>:8200 --set role=gantry-%s\n", st.Space, st.ID)
	default:
		return errs.E(errs.Invalid, "provider must be aws, gcp, azure or vault")
	}
	out.Instructions = b.String()
	httpx.WriteJSON(w, http.StatusOK, out)
	return nil
}
