package e2e

import (
	"context"
	"encoding/json"
	"io/fs"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"

	"github.com/gantry-iac/gantry/internal/apiv1"
	"github.com/gantry-iac/gantry/internal/fakes/fakeentra"
	"github.com/gantry-iac/gantry/internal/fakes/fakegoogle"
	"github.com/gantry-iac/gantry/internal/fakes/fakests"
	"github.com/gantry-iac/gantry/internal/fakes/fakevault"
)

// awsConfig checks the AWS variables in a local-exec provisioner (at
// apply) and keeps the access key id it saw.
const awsConfig = `
variable "out" {}

resource "terraform_data" "aws" {
  input            = "v1"
  triggers_replace = "v1" # a new version replaces it: the provisioner runs again
  provisioner "local-exec" {
    command = "test -n \"$AWS_SECRET_ACCESS_KEY\" && test \"$AWS_SECURITY_TOKEN\" = \"$AWS_SESSION_TOKEN\" && test \"$AWS_REGION\" = eu-west-1 && printf %s \"$AWS_ACCESS_KEY_ID\" > ${var.out}/apply.akid && echo \"secret: $AWS_SECRET_ACCESS_KEY, apply region: $AWS_REGION\""
  }
}
`

// TestAWSIntegration: a stack with an AWS integration gets credentials
// minted for each run from its OIDC token (AssumeRoleWithWebIdentity,
// through the official SDK, at an STS that verifies the token against the
// server's JWKS over HTTP and the role's trust condition on sub): read
// credentials while planning, other, write ones while applying, seen by
// real OpenTofu (a local-exec provisioner); a stack the role does not
// trust fails at PREPARING with AWS's reason; no credential in the log,
// the API, the audit trail or the data directory.
func TestAWSIntegration(t *testing.T) {
	requireSetup(t)
	s := StartServer(t, ServerConfig{})
	const role = "arn:aws:iam::123456789012:role/gantry-app"
	fake := fakests.New("eu-west-1", fakests.Role{ARN: role, Issuer: s.URL, Audience: "sts.amazonaws.com",
		Subjects: []string{"space:team:stack:app:run_type:*:scope:*"}})
	sts := httptest.NewServer(fake)
	t.Cleanup(sts.Close)

	out := t.TempDir()
	repo := NewRepo(t, map[string]string{"main.tf": awsConfig})
	s.MustGantry(t, "space", "create", "--id", "team", "--name", "team")
	for _, id := range []string{"app", "other"} {
		s.CreateStack(t, id, repo.URL, "--space", "team", "--autodeploy",
			"--before-plan", `printf %s "$AWS_ACCESS_KEY_ID" > `+filepath.Join(out, id+"-plan.akid")+` && echo "region: $AWS_REGION key: $AWS_ACCESS_KEY_ID"`)
		s.MustGantry(t, "stack", "env", "set", "--id", id, "TF_VAR_out", out)
	}
	var in apiv1.Integration
	s.MustJSON(t, &in, "integration", "create", "--id", "aws-team", "--space", "team", "--type", "aws",
		"--set", "role_arn="+role, "--set", "region=eu-west-1", "--set", "sts_endpoint="+sts.URL)
	s.MustGantry(t, "integration", "attach", "--id", "aws-team", "--stack", "app")
	s.MustGantry(t, "integration", "attach", "--id", "aws-team", "--stack", "other", "--read")

	r := s.StartRun(t, "deploy", "app")
	s.WaitRun(t, r.ID, "FINISHED")
	issued := fake.Issued()
	if len(issued) != 2 || !strings.HasSuffix(issued[0].Subject, ":scope:read") || !strings.HasSuffix(issued[1].Subject, ":scope:write") ||
		issued[0].Session != r.ID {
		t.Fatalf("STS issued %+v", issued)
	}
	read := func(name string) string {
		b, err := os.ReadFile(filepath.Join(out, name))
		if err != nil {
			t.Fatalf("%s: %v\n%s", name, err, s.Logs(t, "app", r.ID))
		}
		return string(b)
	}
	if read("app-plan.akid") != issued[0].AccessKeyID || read("apply.akid") != issued[1].AccessKeyID {
		t.Errorf("plan saw %s, apply %s; STS issued %s (read) and %s (write)", read("app-plan.akid"), read("apply.akid"), issued[0].AccessKeyID, issued[1].AccessKeyID)
	}
	log := s.Logs(t, "app", r.ID)
	if !strings.Contains(log, "secret: *****") {
		t.Errorf("the apply's secret key is not masked in the log:\n%s", log)
	}
	// The region is a setting, shown; the access key is a credential.
	if !strings.Contains(log, "region: eu-west-1 key: *****") || !strings.Contains(log, "secret: *****, apply region: eu-west-1") ||
		strings.Contains(log, issued[0].AccessKeyID) || strings.Contains(log, issued[1].AccessKeyID) {
		t.Errorf("want the region shown and the access key masked in the log:\n%s", log)
	}

	// generate_on_worker: the worker mints the credentials itself, with
	// tokens the server issued for the integration's audience.
	s.MustGantry(t, "integration", "update", "--id", "aws-team", "--set", "generate_on_worker=true")
	repo.Commit(t, "v2", map[string]string{"main.tf": strings.ReplaceAll(awsConfig, `"v1"`, `"v2"`)})
	rw := s.StartRun(t, "deploy", "app")
	s.WaitRun(t, rw.ID, "FINISHED")
	issued = fake.Issued()
	if len(issued) != 4 || issued[2].Session != rw.ID || !strings.HasSuffix(issued[3].Subject, ":scope:write") {
		t.Fatalf("STS issued %+v", issued)
	}
	if read("app-plan.akid") != issued[2].AccessKeyID || read("apply.akid") != issued[3].AccessKeyID {
		t.Errorf("on the worker: plan saw %s, apply %s; STS issued %s and %s", read("app-plan.akid"), read("apply.akid"), issued[2].AccessKeyID, issued[3].AccessKeyID)
	}
	if log := s.Logs(t, "app", rw.ID); !strings.Contains(log, "Minted the credentials of integration aws-team on this worker (read)") ||
		!strings.Contains(log, "(write)") || !strings.Contains(log, "region: eu-west-1 key: *****") || strings.Contains(log, issued[2].AccessKeyID) {
		t.Errorf("the log does not say the worker minted, or shows the access key, or hides the region:\n%s", log)
	}
	s.MustGantry(t, "integration", "update", "--id", "aws-team", "--unset", "generate_on_worker")

	// The role does not trust stack other: its run fails at PREPARING with
	// AWS's reason.
	r2 := s.StartRun(t, "deploy", "other")
	failed := s.WaitRun(t, r2.ID, "FAILED")
	if !strings.Contains(failed.Reason, "AWS refused AssumeRoleWithWebIdentity for "+role+": AccessDenied") {
		t.Errorf("reason %q", failed.Reason)
	}
	if _, err := os.Stat(filepath.Join(out, "other-plan.akid")); err == nil {
		t.Error("the refused run went on to plan")
	}

	// The trust policy to paste into AWS names the stack's subjects.
	var doc map[string]any
	s.MustJSON(t, &doc, "integration", "aws", "trust-policy", "--id", "aws-team", "--stack", "app")
	raw, _ := json.Marshal(doc)
	if !strings.Contains(string(raw), "space:team:stack:app:run_type:*:scope:write") || !strings.Contains(string(raw), "sts:AssumeRoleWithWebIdentity") {
		t.Errorf("trust policy %s", raw)
	}

	// Every issuance audited, without credentials; no credential stored.
	var evs []apiv1.AuditEvent
	s.getJSON(t, "/api/v1/audit/events?action=integration.credentials", &struct{ Items *[]apiv1.AuditEvent }{&evs})
	if len(evs) != 2 {
		t.Errorf("%d integration.credentials events, want 2 (the worker minted the others)", len(evs))
	}
	secretsIssued := []string{}
	for _, is := range fake.Issued() {
		secretsIssued = append(secretsIssued, is.SecretAccessKey, is.SessionToken)
	}
	for _, ev := range evs {
		for _, sec := range secretsIssued {
			if strings.Contains(string(ev.Change), sec) {
				t.Errorf("audit event holds a credential: %s", ev.Change)
			}
		}
	}
	_ = filepath.WalkDir(s.DataDir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return nil
		}
		b, _ := os.ReadFile(p)
		for _, sec := range secretsIssued {
			if strings.Contains(string(b), sec) {
				t.Errorf("%s holds a credential", p)
			}
		}
		return nil
	})
	if strings.Contains(s.Log(), issued[1].SecretAccessKey) {
		t.Error("the server log holds a credential")
	}
}

// TestRefusedCredentialsKeepTheWorker: a cloud that refuses a run's
// credentials fails that run at PREPARING, and nothing else: the built-in
// worker that drew it (the only one here) goes on and runs the next runs.
// (A refusal used to come back to the worker as an error that stopped it
// for good, and READY runs then waited forever.)
func TestRefusedCredentialsKeepTheWorker(t *testing.T) {
	requireSetup(t)
	s := StartServer(t, ServerConfig{Workers: 1})
	const role = "arn:aws:iam::123456789012:role/gantry-app"
	fake := fakests.New("eu-west-1", fakests.Role{ARN: role, Issuer: s.URL, Audience: "sts.amazonaws.com",
		Subjects: []string{"space:root:stack:app:run_type:*:scope:*"}})
	sts := httptest.NewServer(fake)
	t.Cleanup(sts.Close)
	repo := NewRepo(t, map[string]string{"main.tf": staticConfig("v1")})
	for _, id := range []string{"app", "other"} {
		s.CreateStack(t, id, repo.URL, "--autodeploy")
	}
	s.MustGantry(t, "integration", "create", "--id", "aws", "--type", "aws", "--set", "role_arn="+role,
		"--set", "sts_endpoint="+sts.URL, "--label", "autoattach:*")
	for range 2 {
		r := s.StartRun(t, "deploy", "other")
		failed := s.WaitRun(t, r.ID, "FAILED")
		if !strings.Contains(failed.Reason, "AWS refused AssumeRoleWithWebIdentity") {
			t.Fatalf("reason %q", failed.Reason)
		}
	}
	r := s.StartRun(t, "deploy", "app")
	s.WaitRun(t, r.ID, "FINISHED")
	if strings.Contains(s.Log(), "built-in worker stopped") {
		t.Errorf("a built-in worker stopped:\n%s", s.Log())
	}
}

// TestVaultIntegration: a stack with a Vault integration logs in to the
// JWT auth method with the run's token (through the official Vault API
// client, at a Vault that verifies it against the server's JWKS and the
// role's bound subject); the run sees VAULT_TOKEN and VAULT_ADDR; the
// token is revoked when the job ends; a role bound to another stack fails
// the run at PREPARING with Vault's reason.
func TestVaultIntegration(t *testing.T) {
	requireSetup(t)
	s := StartServer(t, ServerConfig{})
	fake := fakevault.New(fakevault.Role{Name: "app", Issuer: s.URL, Audience: "vault", BoundSubject: "space:root:stack:app:*"})
	v := httptest.NewServer(fake)
	t.Cleanup(v.Close)
	out := t.TempDir()
	repo := NewRepo(t, map[string]string{"main.tf": staticConfig("v1")})
	for _, id := range []string{"app", "other"} {
		s.CreateStack(t, id, repo.URL, "--before-plan",
			`test "$VAULT_ADDR" = "`+v.URL+`" && printf %s "$VAULT_TOKEN" > `+filepath.Join(out, id+".vt")+` && echo "vault: $VAULT_TOKEN"`)
	}
	var in apiv1.Integration
	s.MustJSON(t, &in, "integration", "create", "--id", "vault", "--type", "vault", "--set", "address="+v.URL, "--set", "role=app",
		"--label", "autoattach:*")
	r := s.StartRun(t, "preview", "app")
	s.WaitRun(t, r.ID, "FINISHED")
	tok, err := os.ReadFile(filepath.Join(out, "app.vt"))
	if err != nil || !strings.HasPrefix(string(tok), "hvs.") {
		t.Fatalf("the run saw no Vault token: %v %q\n%s", err, tok, s.Logs(t, "app", r.ID))
	}
	logins := fake.Logins()
	if len(logins) != 1 || logins[0].Token != string(tok) || logins[0].Subject != "space:root:stack:app:run_type:PROPOSED:scope:read" {
		t.Errorf("logins %+v", logins)
	}
	// The worker revokes it as the job ends (just after the run does).
	if !poll(10*time.Second, 50*time.Millisecond, func() bool { return fake.Revoked(string(tok)) }) {
		t.Error("the Vault token was not revoked when the job ended")
	}
	if log := s.Logs(t, "app", r.ID); strings.Contains(log, string(tok)) || !strings.Contains(log, "vault: *****") {
		t.Errorf("the Vault token shows in the log:\n%s", log)
	}
	r2 := s.StartRun(t, "preview", "other")
	failed := s.WaitRun(t, r2.ID, "FAILED")
	if !strings.Contains(failed.Reason, "Vault refused the JWT login") || !strings.Contains(failed.Reason, "bound subject") {
		t.Errorf("reason %q", failed.Reason)
	}
}

// TestVaultTokenRevokedWhenALaterIntegrationFails: integrations mint in
// id order; when a later one is refused after a Vault login succeeded, no
// worker gets the job, so the server revokes the Vault token itself: at
// the apply (minting the apply's credentials failed) and at the claim
// (PREPARING).
func TestVaultTokenRevokedWhenALaterIntegrationFails(t *testing.T) {
	requireSetup(t)
	s := StartServer(t, ServerConfig{Workers: 1})
	fake := fakevault.New(fakevault.Role{Name: "app", Issuer: s.URL, Audience: "vault", BoundSubject: "space:root:stack:app:*"})
	v := httptest.NewServer(fake)
	t.Cleanup(v.Close)
	repo := NewRepo(t, map[string]string{"main.tf": staticConfig("v1")})
	s.CreateStack(t, "app", repo.URL, "--autodeploy")
	s.MustGantry(t, "integration", "create", "--id", "a-vault", "--type", "vault", "--set", "address="+v.URL, "--set", "role=app")
	s.MustGantry(t, "integration", "create", "--id", "b-vault", "--type", "vault", "--set", "address="+v.URL, "--set", "role=nope")
	s.MustGantry(t, "integration", "attach", "--id", "a-vault", "--stack", "app")
	s.MustGantry(t, "integration", "attach", "--id", "b-vault", "--stack", "app", "--write")
	allRevoked := func(want int) {
		t.Helper()
		var logins []fakevault.Login
		if !poll(10*time.Second, 50*time.Millisecond, func() bool {
			logins = fake.Logins()
			for _, l := range logins {
				if !fake.Revoked(l.Token) {
					return false
				}
			}
			return len(logins) == want
		}) {
			for _, l := range logins {
				t.Errorf("token of %s revoked: %v", l.Subject, fake.Revoked(l.Token))
			}
			t.Fatalf("%d logins, want %d, all revoked", len(logins), want)
		}
	}

	// The plan gets a-vault's token; at the apply, a-vault logs in, then
	// b-vault is refused.
	r := s.StartRun(t, "deploy", "app")
	failed := s.WaitRun(t, r.ID, "FAILED")
	if !strings.Contains(failed.Reason, "minting the apply's credentials failed: integration b-vault: Vault refused the JWT login") {
		t.Errorf("reason %q", failed.Reason)
	}
	allRevoked(2) // the plan's by the worker, the apply's by the server

	// At the claim.
	s.MustGantry(t, "integration", "attach", "--id", "b-vault", "--stack", "app")
	r = s.StartRun(t, "preview", "app")
	failed = s.WaitRun(t, r.ID, "FAILED")
	if !strings.Contains(failed.Reason, "preparing the job failed: integration b-vault: Vault refused the JWT login") {
		t.Errorf("reason %q", failed.Reason)
	}
	allRevoked(3)
}

// TestGoogleIntegration: workload identity federation through Google's own
// library: the run's token is exchanged at an STS that verifies it against
// the server's JWKS, its audience (the provider's resource name) and an
// attribute condition on sub, then the service account is impersonated
// (generateAccessToken); the run sees GOOGLE_OAUTH_ACCESS_TOKEN and the
// project; a stack the service account does not trust fails at PREPARING.
func TestGoogleIntegration(t *testing.T) {
	requireSetup(t)
	s := StartServer(t, ServerConfig{})
	const provider = "projects/123456789/locations/global/workloadIdentityPools/gantry-pool/providers/gantry-prov"
	const sa = "tofu-runner@my-proj.iam.gserviceaccount.com"
	fake := fakegoogle.New(fakegoogle.Provider{Resource: provider, Issuer: s.URL, SubjectPattern: "space:root:stack:*",
		ServiceAccounts: map[string]string{sa: "space:root:stack:app:*"}})
	g := httptest.NewServer(fake)
	t.Cleanup(g.Close)
	out := t.TempDir()
	repo := NewRepo(t, map[string]string{"main.tf": staticConfig("v1")})
	for _, id := range []string{"app", "other"} {
		s.CreateStack(t, id, repo.URL, "--before-plan",
			`test "$GOOGLE_PROJECT" = my-proj && test "$CLOUDSDK_CORE_PROJECT" = my-proj && printf %s "$GOOGLE_OAUTH_ACCESS_TOKEN" > `+filepath.Join(out, id+".gat")+
				` && cp "$GOOGLE_APPLICATION_CREDENTIALS" `+filepath.Join(out, id+".json")+` && cp "$(dirname "$GOOGLE_APPLICATION_CREDENTIALS")/gcp-gcp.jwt" `+filepath.Join(out, id+".jwt"))
	}
	var in apiv1.Integration
	s.MustJSON(t, &in, "integration", "create", "--id", "gcp", "--type", "gcp", "--set", "workload_identity_provider="+provider,
		"--set", "service_account="+sa, "--set", "project=my-proj", "--set", "sts_endpoint="+g.URL+"/v1/token",
		"--set", "iam_credentials_endpoint="+g.URL, "--label", "autoattach:*")
	r := s.StartRun(t, "preview", "app")
	s.WaitRun(t, r.ID, "FINISHED")
	issued := fake.Issued()
	got, err := os.ReadFile(filepath.Join(out, "app.gat"))
	if err != nil || len(issued) != 1 || string(got) != issued[0].AccessToken || issued[0].ServiceAccount != sa ||
		issued[0].Subject != "space:root:stack:app:run_type:PROPOSED:scope:read" {
		t.Fatalf("the run saw %q (%v); Google issued %+v\n%s", got, err, issued, s.Logs(t, "app", r.ID))
	}
	// The external_account configuration Google's own libraries read: it
	// names the token file beside it (outside the workspace), whose token
	// the fake STS accepts.
	var ext struct {
		Type, Audience   string
		CredentialSource struct{ File string } `json:"credential_source"`
	}
	raw, _ := os.ReadFile(filepath.Join(out, "app.json"))
	if err := json.Unmarshal(raw, &ext); err != nil || ext.Type != "external_account" || ext.Audience != "//iam.googleapis.com/"+provider ||
		!strings.HasSuffix(ext.CredentialSource.File, "/credentials/gcp-gcp.jwt") || strings.Contains(ext.CredentialSource.File, "/src/") {
		t.Errorf("external_account config %s (%v)", raw, err)
	}
	jwt, _ := os.ReadFile(filepath.Join(out, "app.jwt"))
	if p, err := oidc.NewProvider(context.Background(), s.URL); err != nil {
		t.Fatal(err)
	} else if _, err := p.Verifier(&oidc.Config{ClientID: "//iam.googleapis.com/" + provider}).Verify(context.Background(), string(jwt)); err != nil {
		t.Errorf("the credential file's token: %v", err)
	}
	r2 := s.StartRun(t, "preview", "other")
	failed := s.WaitRun(t, r2.ID, "FAILED")
	if !strings.Contains(failed.Reason, "Google refused the token exchange for "+sa) || !strings.Contains(failed.Reason, "iam.serviceAccounts.getAccessToken") {
		t.Errorf("reason %q", failed.Reason)
	}
}

// TestAzureIntegration: the run gets the azurerm provider's OIDC settings
// and a token for Entra's audience; with access_token the token is
// exchanged at an Entra that checks it against the server's JWKS and the
// app's federated credential (exact subject): the run sees the access
// token; a stack without a federated credential fails at PREPARING with
// AADSTS70021.
func TestAzureIntegration(t *testing.T) {
	requireSetup(t)
	s := StartServer(t, ServerConfig{})
	const tenant, client, sub = "11111111-2222-3333-4444-555555555555", "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee", "66666666-7777-8888-9999-000000000000"
	fake := fakeentra.New(fakeentra.App{Tenant: tenant, ClientID: client, Issuer: s.URL,
		Subjects: []string{"space:root:stack:app:run_type:PROPOSED:scope:read"}})
	e := httptest.NewServer(fake)
	t.Cleanup(e.Close)
	out := t.TempDir()
	repo := NewRepo(t, map[string]string{"main.tf": staticConfig("v1")})
	for _, id := range []string{"app", "other"} {
		s.CreateStack(t, id, repo.URL, "--before-plan",
			`test "$ARM_USE_OIDC" = true && test "$ARM_CLIENT_ID" = `+client+` && test "$ARM_TENANT_ID" = `+tenant+` && test "$ARM_SUBSCRIPTION_ID" = `+sub+
				` && printf %s "$ARM_ACCESS_TOKEN" > `+filepath.Join(out, id+".at")+` && printf %s "$ARM_OIDC_TOKEN" > `+filepath.Join(out, id+".jwt")+
				` && echo "oidc: $ARM_USE_OIDC, client $ARM_CLIENT_ID, token $ARM_ACCESS_TOKEN"`)
	}
	var in apiv1.Integration
	s.MustJSON(t, &in, "integration", "create", "--id", "azure", "--type", "azure", "--set", "tenant_id="+tenant, "--set", "client_id="+client,
		"--set", "subscription_id="+sub, "--set", "access_token=true", "--set", "authority="+e.URL, "--label", "autoattach:*")
	r := s.StartRun(t, "preview", "app")
	s.WaitRun(t, r.ID, "FINISHED")
	issued := fake.Issued()
	at, err := os.ReadFile(filepath.Join(out, "app.at"))
	if err != nil || len(issued) != 1 || string(at) != issued[0].AccessToken || issued[0].Scope != "https://management.azure.com/.default" {
		t.Fatalf("the run saw %q (%v); Entra issued %+v\n%s", at, err, issued, s.Logs(t, "app", r.ID))
	}
	// The settings show in the log (a literal true is not masked); the
	// tokens do not.
	if log := s.Logs(t, "app", r.ID); !strings.Contains(log, "oidc: true, client "+client+", token *****") || strings.Contains(log, string(at)) {
		t.Errorf("the log:\n%s", log)
	}
	jwt, _ := os.ReadFile(filepath.Join(out, "app.jwt"))
	provider, err := oidc.NewProvider(context.Background(), s.URL)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := provider.Verifier(&oidc.Config{ClientID: "api://AzureADTokenExchange"}).Verify(context.Background(), string(jwt)); err != nil {
		t.Errorf("ARM_OIDC_TOKEN: %v", err)
	}
	r2 := s.StartRun(t, "preview", "other")
	failed := s.WaitRun(t, r2.ID, "FAILED")
	if !strings.Contains(failed.Reason, "Microsoft Entra refused the token exchange") || !strings.Contains(failed.Reason, "AADSTS70021") {
		t.Errorf("reason %q", failed.Reason)
	}
	// The setup printed for Azure names the exact subjects Entra will see.
	setup := s.MustGantry(t, "integration", "oidc", "setup", "--provider", "azure", "--stack", "app")
	if !strings.Contains(setup, `"subject":"space:root:stack:app:run_type:PROPOSED:scope:read"`) || !strings.Contains(setup, `"issuer":"`+s.URL+`"`) {
		t.Errorf("azure setup:\n%s", setup)
	}
}

// TestAzureManagedSecret: in managed mode the server creates the
// application's client secret through Microsoft Graph with its admin
// credential, keeps it sealed, hands runs ARM_CLIENT_SECRET (checked at
// PREPARING by a client credentials exchange), rotates it on schedule and
// removes the previous one later; the secret is never in the data
// directory in clear.
func TestAzureManagedSecret(t *testing.T) {
	requireSetup(t)
	const tenant, app, admin = "11111111-2222-3333-4444-555555555555", "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee", "99999999-8888-7777-6666-555555555555"
	fake := fakeentra.New(fakeentra.App{Tenant: tenant, ClientID: app},
		fakeentra.App{Tenant: tenant, ClientID: admin, GraphAdmin: true, Secrets: map[string]string{"k0": "admin-secret-value"}})
	e := httptest.NewServer(fake)
	t.Cleanup(e.Close)
	s := StartServer(t, ServerConfig{Args: []string{"--azure-graph-tenant-id", tenant, "--azure-graph-client-id", admin,
		"--azure-authority", e.URL, "--azure-graph-endpoint", e.URL, "--azure-secret-rotation", "3s"},
		Env: []string{"GANTRY_AZURE_GRAPH_CLIENT_SECRET=admin-secret-value"}})
	out := t.TempDir()
	repo := NewRepo(t, map[string]string{"main.tf": staticConfig("v1")})
	s.CreateStack(t, "app", repo.URL, "--before-plan",
		`test -z "$ARM_USE_OIDC" && test -n "$ARM_ACCESS_TOKEN" && printf %s "$ARM_CLIENT_SECRET" > `+filepath.Join(out, "secret"))
	var in apiv1.Integration
	s.MustJSON(t, &in, "integration", "create", "--id", "azure-managed", "--type", "azure", "--set", "tenant_id="+tenant, "--set", "client_id="+app,
		"--set", "mode=managed", "--set", "access_token=true", "--set", "authority="+e.URL, "--label", "autoattach:*")
	runSecret := func() string {
		t.Helper()
		r := s.StartRun(t, "preview", "app")
		s.WaitRun(t, r.ID, "FINISHED")
		b, err := os.ReadFile(filepath.Join(out, "secret"))
		if err != nil {
			t.Fatalf("no secret: %v\n%s", err, s.Logs(t, "app", r.ID))
		}
		return string(b)
	}
	first := runSecret()
	secrets := fake.Secrets(app)
	if len(secrets) != 1 || !slicesContains(secrets, first) {
		t.Fatalf("app secrets %v, the run saw %q", secrets, first)
	}
	// After the rotation interval a new secret is made; after twice it the
	// old one is removed from the application.
	if !poll(20*time.Second, 100*time.Millisecond, func() bool { return len(fake.Secrets(app)) == 2 }) {
		t.Fatalf("no rotation: %v", fake.Secrets(app))
	}
	second := runSecret()
	if second == first || !slicesContains(fake.Secrets(app), second) {
		t.Errorf("after rotation the run saw %q (first %q), app has %v", second, first, fake.Secrets(app))
	}
	if !poll(20*time.Second, 100*time.Millisecond, func() bool { return !slicesContains(fake.Secrets(app), first) }) {
		t.Errorf("the old secret was not removed: %v", fake.Secrets(app))
	}
	_ = filepath.WalkDir(s.DataDir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			if b, _ := os.ReadFile(p); strings.Contains(string(b), first) || strings.Contains(string(b), second) {
				t.Errorf("%s holds a managed secret in clear", p)
			}
		}
		return nil
	})
	var evs []apiv1.AuditEvent
	s.getJSON(t, "/api/v1/audit/events?action=integration.secret_rotate", &struct{ Items *[]apiv1.AuditEvent }{&evs})
	if len(evs) < 2 {
		t.Errorf("%d secret_rotate events", len(evs))
	}
	// Deleting the integration removes its secrets at Microsoft.
	s.MustGantry(t, "integration", "delete", "--id", "azure-managed")
	if left := fake.Secrets(app); len(left) != 0 {
		t.Errorf("secrets left at Microsoft after the integration was deleted: %v", left)
	}
}

func slicesContains(m map[string]string, v string) bool {
	for _, x := range m {
		if x == v {
			return true
		}
	}
	return false
}

// TestTwoIntegrationsSetOneVariable: two Vault integrations would both set
// VAULT_TOKEN for a job: one would silently win and only its token be
// revoked. The run fails at PREPARING naming both and the variable, and
// every token minted is revoked: when the server mints both, and when the
// worker mints the second (generate_on_worker).
func TestTwoIntegrationsSetOneVariable(t *testing.T) {
	requireSetup(t)
	s := StartServer(t, ServerConfig{})
	fake := fakevault.New(fakevault.Role{Name: "app", Issuer: s.URL, Audience: "vault", BoundSubject: "space:root:stack:app:*"})
	v := httptest.NewServer(fake)
	t.Cleanup(v.Close)
	repo := NewRepo(t, map[string]string{"main.tf": staticConfig("v1")})
	s.CreateStack(t, "app", repo.URL)
	for _, id := range []string{"a-vault", "b-vault"} {
		s.MustGantry(t, "integration", "create", "--id", id, "--type", "vault", "--set", "address="+v.URL, "--set", "role=app")
		s.MustGantry(t, "integration", "attach", "--id", id, "--stack", "app")
	}
	allRevoked := func(want int) {
		t.Helper()
		var logins []fakevault.Login
		if !poll(10*time.Second, 50*time.Millisecond, func() bool {
			logins = fake.Logins()
			for _, l := range logins {
				if !fake.Revoked(l.Token) {
					return false
				}
			}
			return len(logins) == want
		}) {
			for _, l := range logins {
				t.Errorf("token of %s revoked: %v", l.Subject, fake.Revoked(l.Token))
			}
			t.Fatalf("%d logins, want %d, all revoked", len(logins), want)
		}
	}

	r := s.StartRun(t, "preview", "app")
	failed := s.WaitRun(t, r.ID, "FAILED")
	if !strings.Contains(failed.Reason, "preparing the job failed: integrations a-vault and b-vault both set the environment variables VAULT_ADDR, VAULT_TOKEN") {
		t.Errorf("reason %q", failed.Reason)
	}
	allRevoked(2)

	// The second minted on the worker.
	s.MustGantry(t, "integration", "update", "--id", "b-vault", "--set", "generate_on_worker=true")
	r = s.StartRun(t, "preview", "app")
	failed = s.WaitRun(t, r.ID, "FAILED")
	if !strings.Contains(failed.Reason, "integration b-vault (minted on this worker) sets VAULT_ADDR, VAULT_TOKEN, which another integration") {
		t.Errorf("reason %q", failed.Reason)
	}
	allRevoked(4)
}
