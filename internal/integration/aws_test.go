package integration_test

import (
	"bytes"
	"context"
	"maps"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/gantry-iac/gantry/internal/db"
	"github.com/gantry-iac/gantry/internal/db/dbtest"
	"github.com/gantry-iac/gantry/internal/errs"
	"github.com/gantry-iac/gantry/internal/fakes/fakests"
	"github.com/gantry-iac/gantry/internal/integration"
	"github.com/gantry-iac/gantry/internal/runtoken"
	"github.com/gantry-iac/gantry/internal/secrets"
)

func TestMain(m *testing.M) { dbtest.Main(m) }

// issuer is Gantry's run token issuer served over real HTTP.
func issuer(t *testing.T, d *db.DB) (*runtoken.Service, string) {
	t.Helper()
	var s *runtoken.Service
	mux := http.NewServeMux()
	mux.HandleFunc("GET /.well-known/openid-configuration", func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write(s.Discovery()) })
	mux.HandleFunc("GET /.well-known/jwks", func(w http.ResponseWriter, r *http.Request) {
		b, _ := s.JWKS(r.Context())
		_, _ = w.Write(b)
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	box, _ := secrets.NewBox(bytes.Repeat([]byte{3}, 32))
	var err error
	if s, err = runtoken.New(d, box, runtoken.Config{Issuer: srv.URL}); err != nil {
		t.Fatal(err)
	}
	if err := s.EnsureKey(context.Background()); err != nil {
		t.Fatal(err)
	}
	return s, srv.URL
}

func request(tokens *runtoken.Service, stack, scope string) integration.Request {
	r := integration.Request{RunID: "run-01TEST", RunType: "TRACKED", StackID: stack, SpaceID: "team", Scope: scope}
	r.Token = func(ctx context.Context, aud string) (string, error) {
		tok, _, err := tokens.Issue(ctx, runtoken.Run{SpaceID: "team", SpacePath: "root/team", StackID: stack, RunID: r.RunID, RunType: "TRACKED", Scope: scope, Audience: aud})
		return tok, err
	}
	return r
}

// TestAWSWebIdentity: the run's token buys AWS credentials through the
// SDK from an STS that verifies it against Gantry's JWKS and the role's
// trust condition on sub; a stack the role does not trust is refused with
// AWS's message.
func TestAWSWebIdentity(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, d *db.DB) {
		ctx := context.Background()
		tokens, iss := issuer(t, d)
		const role = "arn:aws:iam::123456789012:role/gantry-net"
		fake := fakests.New("eu-west-1", fakests.Role{ARN: role, Issuer: iss, Audience: "sts.amazonaws.com",
			Subjects: []string{"space:team:stack:net:run_type:*:scope:*"}})
		sts := httptest.NewServer(fake)
		t.Cleanup(sts.Close)
		in := integration.Integration{ID: "aws-prod", Type: integration.AWS, Config: map[string]string{
			"role_arn": role, "region": "eu-west-1", "sts_endpoint": sts.URL, "duration_seconds": "900"}}
		m := &integration.AWSMinter{}
		if err := m.Validate(in.Config); err != nil {
			t.Fatal(err)
		}
		c, err := m.Mint(ctx, in, request(tokens, "net", "read"))
		if err != nil {
			t.Fatal(err)
		}
		got := fake.Issued()
		if len(got) != 1 || got[0].Subject != "space:team:stack:net:run_type:TRACKED:scope:read" || got[0].Session != "run-01TEST" {
			t.Fatalf("STS issued %+v", got)
		}
		want := map[string]integration.Var{
			"AWS_ACCESS_KEY_ID":     {Value: got[0].AccessKeyID, Secret: true},
			"AWS_SECRET_ACCESS_KEY": {Value: got[0].SecretAccessKey, Secret: true},
			"AWS_SESSION_TOKEN":     {Value: got[0].SessionToken, Secret: true},
			"AWS_SECURITY_TOKEN":    {Value: got[0].SessionToken, Secret: true},
			"AWS_REGION":            {Value: "eu-west-1"}, // a setting, not a secret
			"AWS_DEFAULT_REGION":    {Value: "eu-west-1"},
		}
		if !maps.Equal(c.Env, want) || c.Expires.IsZero() || c.Identity != role {
			t.Errorf("credentials %+v", c)
		}
		// Another stack: the trust policy's sub condition refuses it.
		_, err = m.Mint(ctx, in, request(tokens, "other", "write"))
		if !errs.Is(err, errs.Invalid) || !strings.Contains(errs.Public(err), "AWS refused AssumeRoleWithWebIdentity for "+role+": AccessDenied") {
			t.Errorf("untrusted stack: %v", err)
		}
		// A role the account does not have.
		in.Config["role_arn"] = "arn:aws:iam::123456789012:role/nope"
		if _, err := m.Mint(ctx, in, request(tokens, "net", "read")); err == nil || !strings.Contains(errs.Public(err), "AccessDenied") {
			t.Errorf("unknown role: %v", err)
		}
	})
}

// TestAWSAssumeRole: with the server's own AWS credentials (SigV4-signed
// by the SDK, checked by the fake), AssumeRole names the run and sends
// the stack's ExternalId and session tags.
func TestAWSAssumeRole(t *testing.T) {
	ctx := context.Background()
	const role = "arn:aws:iam::210987654321:role/gantry-assume"
	fake := fakests.New("us-east-1", fakests.Role{ARN: role, AccessKeyID: "AKIAGANTRYSERVER", ExternalIDs: []string{"acme@aws-a@net@write"}})
	fake.Secrets["AKIAGANTRYSERVER"] = "server-secret-key"
	sts := httptest.NewServer(fake)
	t.Cleanup(sts.Close)
	t.Setenv("AWS_ACCESS_KEY_ID", "AKIAGANTRYSERVER")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "server-secret-key")
	t.Setenv("AWS_CONFIG_FILE", "/dev/null")
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	in := integration.Integration{ID: "aws-a", Type: integration.AWS, Config: map[string]string{"role_arn": role, "mode": "assume_role",
		"external_id": "true", "account": "acme", "session_tags": "true", "sts_endpoint": sts.URL}}
	m := &integration.AWSMinter{}
	if err := m.Validate(in.Config); err != nil {
		t.Fatal(err)
	}
	r := integration.Request{RunID: "run-01W", StackID: "net", SpaceID: "team", Scope: "write"}
	c, err := m.Mint(ctx, in, r)
	if err != nil {
		t.Fatal(err)
	}
	got := fake.Issued()
	if len(got) != 1 || got[0].ExternalID != "acme@aws-a@net@write" || got[0].Session != "run-01W" || got[0].Tags["gantry:stack"] != "net" ||
		c.Env["AWS_ACCESS_KEY_ID"] != (integration.Var{Value: got[0].AccessKeyID, Secret: true}) {
		t.Fatalf("issued %+v, credentials %+v", got, c)
	}
	// The read ExternalId is not trusted by this role.
	r.Scope = "read"
	if _, err := m.Mint(ctx, in, r); err == nil || !strings.Contains(errs.Public(err), "AccessDenied") {
		t.Errorf("read ExternalId: %v", err)
	}
	// A wrong secret: the signature does not verify.
	t.Setenv("AWS_SECRET_ACCESS_KEY", "not-the-secret")
	r.Scope = "write"
	if _, err := m.Mint(ctx, in, r); err == nil || !strings.Contains(errs.Public(err), "SignatureDoesNotMatch") {
		t.Errorf("bad signature: %v", err)
	}
}

func TestAWSValidate(t *testing.T) {
	m := &integration.AWSMinter{}
	for _, cfg := range []map[string]string{
		{},
		{"role_arn": "arn:aws:iam::1234:role/x"},
		{"role_arn": "arn:aws:iam::123456789012:role/x", "duration_seconds": "60"},
		{"role_arn": "arn:aws:iam::123456789012:role/x", "mode": "magic"},
		{"role_arn": "arn:aws:iam::123456789012:role/x", "secret_access_key": "x"},
		{"role_arn": "arn:aws:iam::123456789012:role/x", "sts_endpoint": "ftp://x"},
		{"role_arn": "arn:aws:iam::123456789012:role/x", "region": "mars"},
	} {
		if err := m.Validate(cfg); !errs.Is(err, errs.Invalid) {
			t.Errorf("Validate(%v) = %v, want invalid", cfg, err)
		}
	}
}

func TestVaultValidate(t *testing.T) {
	m := &integration.VaultMinter{}
	if err := m.Validate(map[string]string{"address": "https://vault.example:8200", "role": "app", "mount": "jwt/gantry", "namespace": "team"}); err != nil {
		t.Errorf("valid settings: %v", err)
	}
	for _, cfg := range []map[string]string{
		{},
		{"address": "vault.example", "role": "app"},
		{"address": "https://vault.example"},
		{"address": "https://vault.example", "role": "app", "mount": "../x"},
		{"address": "https://vault.example", "role": "app", "token": "hvs.x"},
	} {
		if err := m.Validate(cfg); !errs.Is(err, errs.Invalid) {
			t.Errorf("Validate(%v) = %v, want invalid", cfg, err)
		}
	}
}

func TestGCPValidate(t *testing.T) {
	m := &integration.GCPMinter{}
	good := map[string]string{"workload_identity_provider": "projects/123/locations/global/workloadIdentityPools/pool1/providers/prov1",
		"service_account": "runner@proj-1.iam.gserviceaccount.com"}
	if err := m.Validate(good); err != nil {
		t.Errorf("valid settings: %v", err)
	}
	if got := integration.GCPAudienceOf(good); got != "//iam.googleapis.com/projects/123/locations/global/workloadIdentityPools/pool1/providers/prov1" {
		t.Errorf("audience %q", got)
	}
	for _, bad := range []map[string]string{
		{"service_account": good["service_account"]},
		{"workload_identity_provider": good["workload_identity_provider"], "service_account": "runner@gmail.com"},
		{"workload_identity_provider": good["workload_identity_provider"], "service_account": good["service_account"], "lifetime_seconds": "7200"},
		{"workload_identity_provider": good["workload_identity_provider"], "service_account": good["service_account"], "key_json": "{}"},
	} {
		if err := m.Validate(bad); !errs.Is(err, errs.Invalid) {
			t.Errorf("Validate(%v) = %v, want invalid", bad, err)
		}
	}
}

func TestAzureValidate(t *testing.T) {
	m := &integration.AzureMinter{}
	good := map[string]string{"tenant_id": "11111111-2222-3333-4444-555555555555", "client_id": "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee"}
	if err := m.Validate(good); err != nil {
		t.Errorf("valid settings: %v", err)
	}
	for _, bad := range []map[string]string{
		{"tenant_id": good["tenant_id"]},
		{"tenant_id": "contoso", "client_id": good["client_id"]},
		{"tenant_id": good["tenant_id"], "client_id": good["client_id"], "access_token": "yes"},
		{"tenant_id": good["tenant_id"], "client_id": good["client_id"], "client_secret": "s3cret"},
	} {
		if err := m.Validate(bad); !errs.Is(err, errs.Invalid) {
			t.Errorf("Validate(%v) = %v, want invalid", bad, err)
		}
	}
}

func TestGenericOIDC(t *testing.T) {
	m := integration.OIDCMinter{}
	for _, bad := range []map[string]string{{}, {"audience": "x", "variable": "GANTRY_X"}, {"audience": "x", "variable": "1BAD"}, {"audience": "x", "secret": "y"}} {
		if err := m.Validate(bad); !errs.Is(err, errs.Invalid) {
			t.Errorf("Validate(%v) = %v, want invalid", bad, err)
		}
	}
	// The token may not take a name Gantry, OpenTofu, another integration
	// or every program of the run reads.
	for _, name := range []string{"SPACELIFT_OIDC_TOKEN", "ro_GANTRY_OIDC_TOKEN", "TF_TOKEN_app_terraform_io", "AWS_ACCESS_KEY_ID",
		"ARM_OIDC_TOKEN", "AZURE_FEDERATED_TOKEN", "GOOGLE_OAUTH_ACCESS_TOKEN", "CLOUDSDK_AUTH_ACCESS_TOKEN", "VAULT_TOKEN",
		"PATH", "Path", "HOME", "LD_PRELOAD", "DYLD_INSERT_LIBRARIES", "https_proxy", "BASH_ENV"} {
		if err := m.Validate(map[string]string{"audience": "x", "variable": name}); !errs.Is(err, errs.Invalid) {
			t.Errorf("variable %s: %v, want invalid", name, err)
		}
	}
	for _, name := range []string{"OIDC_TOKEN_CI", "CI_JWT", "NOMAD_TOKEN", "PATHS_TOKEN", "CONSUL_JWT"} {
		if err := m.Validate(map[string]string{"audience": "x", "variable": name}); err != nil {
			t.Errorf("variable %s: %v", name, err)
		}
	}
	// One stored before the rule is refused when it mints.
	stored := integration.Integration{ID: "old", Type: "oidc", Config: map[string]string{"audience": "x", "variable": "PATH"}}
	if _, err := m.Mint(context.Background(), stored, integration.Request{Token: func(context.Context, string) (string, error) { return "t", nil }}); !errs.Is(err, errs.Invalid) {
		t.Errorf("Mint with variable PATH: %v, want invalid", err)
	}

	in := integration.Integration{ID: "my-ci", Type: "oidc", Config: map[string]string{"audience": "https://ci.example"}}
	var gotAud string
	r := integration.Request{Token: func(_ context.Context, aud string) (string, error) { gotAud = aud; return "tok-123", nil }}
	c, err := m.Mint(context.Background(), in, r)
	if err != nil || gotAud != "https://ci.example" || c.Env["OIDC_TOKEN_MY_CI"] != (integration.Var{Value: "tok-123", Secret: true}) {
		t.Errorf("Mint = %+v, %v (aud %q)", c, err, gotAud)
	}
}

// The settings' length bounds hold (they are checked apart from the
// patterns).
func TestSettingBounds(t *testing.T) {
	name := func(n int) string { return strings.Repeat("r", n) }
	for arn, want := range map[string]bool{
		"arn:aws:iam::123456789012:role/" + name(512):    true,
		"arn:aws:iam::123456789012:role/" + name(513):    false,
		"arn:aws:iam::123456789012:role/path/" + name(5): true,
		"arn:aws:iam::123456789012:role/":                false,
		"arn:aws:iam::12345678901:role/x":                false,
	} {
		err := (&integration.AWSMinter{}).Validate(map[string]string{integration.AWSRoleARN: arn})
		if got := err == nil; got != want {
			t.Errorf("role_arn of %d bytes: %v, want ok=%v", len(arn), err, want)
		}
	}
	const sa = "@proj.iam.gserviceaccount.com"
	provider := func(pool, prov string) string {
		return "projects/123/locations/global/workloadIdentityPools/" + pool + "/providers/" + prov
	}
	for _, c := range []struct {
		provider, account string
		want              bool
	}{
		{provider("pool", "prov"), "gantry" + sa, true},
		{provider(name(32), name(32)), "g" + name(28) + "x" + sa, true},
		{provider("poo", "prov"), "gantry" + sa, false},
		{provider("pool", name(33)), "gantry" + sa, false},
		{provider("pool", "prov"), "gantr" + sa, false},
		{provider("pool", "prov"), "g" + name(29) + "x" + sa, false},
		{provider("pool", "prov"), "gantry-" + sa, false},
	} {
		err := (&integration.GCPMinter{}).Validate(map[string]string{integration.GCPProvider: c.provider, integration.GCPServiceAccount: c.account})
		if got := err == nil; got != c.want {
			t.Errorf("provider %q, account %q: %v, want ok=%v", c.provider, c.account, err, c.want)
		}
	}
}
