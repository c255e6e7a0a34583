package integration

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/oauth2"
	"golang.org/x/oauth2/google/externalaccount"

	"github.com/gantry-iac/gantry/internal/errs"
)

// Google Cloud integration settings (workload identity federation).
const (
	GCP                   = "gcp"
	GCPProvider           = "workload_identity_provider" // required: projects/NUM/locations/global/workloadIdentityPools/POOL/providers/PROV
	GCPServiceAccount     = "service_account"            // required: the service account to impersonate
	GCPScopes             = "scopes"                     // comma-separated, default cloud-platform
	GCPProject            = "project"                    // optional: GOOGLE_PROJECT, CLOUDSDK_CORE_PROJECT
	GCPLifetime           = "lifetime_seconds"           // 600-3600, default 3600
	GCPAudience           = "audience"                   // the token's aud, default the provider's full resource name
	GCPSTSEndpoint        = "sts_endpoint"               // default https://sts.googleapis.com/v1/token
	GCPIAMEndpoint        = "iam_credentials_endpoint"   // default https://iamcredentials.googleapis.com
	defaultGoogleSTS      = "https://sts.googleapis.com/v1/token"
	defaultGoogleIAMCreds = "https://iamcredentials.googleapis.com"
)

// Lengths are checked apart from the patterns (a bounded repetition such
// as {4,32} compiles to one copy per repetition).
var (
	gcpProviderRE = regexp.MustCompile(`^projects/\d+/locations/global/workloadIdentityPools/([a-z0-9-]+)/providers/([a-z0-9-]+)$`)
	gcpSARE       = regexp.MustCompile(`^([a-z][a-z0-9-]*[a-z0-9])@[a-z0-9.-]+\.iam\.gserviceaccount\.com$`)
)

// validGCPProvider reports whether s names a workload identity provider
// (pool and provider ids of 4 to 32 characters).
func validGCPProvider(s string) bool {
	m := gcpProviderRE.FindStringSubmatch(s)
	return m != nil && len(m[1]) >= 4 && len(m[1]) <= 32 && len(m[2]) >= 4 && len(m[2]) <= 32
}

// validGCPServiceAccount reports whether s is a service account email (a
// name of 6 to 30 characters).
func validGCPServiceAccount(s string) bool {
	m := gcpSARE.FindStringSubmatch(s)
	return m != nil && len(m[1]) >= 6 && len(m[1]) <= 30
}

// GCPMinter exchanges the run's OIDC token at Google's Security Token
// Service for a federated token (audience: the workload identity
// provider), then impersonates the configured service account
// (generateAccessToken), through Google's own library
// (golang.org/x/oauth2/google/externalaccount). The run gets
// GOOGLE_OAUTH_ACCESS_TOKEN, which the google provider and gcloud use.
type GCPMinter struct {
	HTTPClient *http.Client
}

// Validate checks a Google Cloud integration's settings.
func (m *GCPMinter) Validate(cfg map[string]string) error {
	known := map[string]bool{GCPProvider: true, GCPServiceAccount: true, GCPScopes: true, GCPProject: true, GCPLifetime: true,
		GCPAudience: true, GCPSTSEndpoint: true, GCPIAMEndpoint: true}
	for k := range cfg {
		if !known[k] {
			return errs.E(errs.Invalid, "unknown Google Cloud setting %q (known: workload_identity_provider, service_account, scopes, project, lifetime_seconds, audience, sts_endpoint, iam_credentials_endpoint)", k)
		}
	}
	if !validGCPProvider(cfg[GCPProvider]) {
		return errs.E(errs.Invalid, "workload_identity_provider %q: want projects/<number>/locations/global/workloadIdentityPools/<pool>/providers/<provider>", cfg[GCPProvider])
	}
	if !validGCPServiceAccount(cfg[GCPServiceAccount]) {
		return errs.E(errs.Invalid, "service_account %q is not a service account email (name@project.iam.gserviceaccount.com)", cfg[GCPServiceAccount])
	}
	if l := cfg[GCPLifetime]; l != "" {
		if n, err := strconv.Atoi(l); err != nil || n < 600 || n > 3600 {
			return errs.E(errs.Invalid, "lifetime_seconds must be from 600 to 3600")
		}
	}
	for _, k := range []string{GCPSTSEndpoint, GCPIAMEndpoint} {
		if e := cfg[k]; e != "" {
			if u, err := url.Parse(e); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
				return errs.E(errs.Invalid, "%s must be an http(s) URL", k)
			}
		}
	}
	return nil
}

// GCPAudienceOf is the default audience of the run token for an
// integration: the provider's full resource name, as Google expects.
func GCPAudienceOf(cfg map[string]string) string {
	if a := cfg[GCPAudience]; a != "" {
		return a
	}
	return "//iam.googleapis.com/" + cfg[GCPProvider]
}

type tokenSupplier func(ctx context.Context) (string, error)

func (f tokenSupplier) SubjectToken(ctx context.Context, _ externalaccount.SupplierOptions) (string, error) {
	return f(ctx)
}

// Mint exchanges the run's token for an access token of the service account.
func (m *GCPMinter) Mint(ctx context.Context, in Integration, r Request) (Credentials, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	// Google's library keeps no error type: the status of Google's last
	// answer tells a refusal from a Google that could not answer.
	client := &http.Client{}
	if m.HTTPClient != nil {
		*client = *m.HTTPClient
	}
	last := &lastStatus{rt: client.Transport}
	client.Transport = last
	ctx = context.WithValue(ctx, oauth2.HTTPClient, client)
	aud := GCPAudienceOf(in.Config)
	stsURL := in.Config[GCPSTSEndpoint]
	if stsURL == "" {
		stsURL = defaultGoogleSTS
	}
	iam := strings.TrimSuffix(in.Config[GCPIAMEndpoint], "/")
	if iam == "" {
		iam = defaultGoogleIAMCreds
	}
	scopes := []string{"https://www.googleapis.com/auth/cloud-platform"}
	if s := in.Config[GCPScopes]; s != "" {
		scopes = strings.Split(s, ",")
	}
	lifetime := 3600
	if n, err := strconv.Atoi(in.Config[GCPLifetime]); err == nil {
		lifetime = n
	}
	ts, err := externalaccount.NewTokenSource(ctx, externalaccount.Config{
		Audience:                       "//iam.googleapis.com/" + in.Config[GCPProvider],
		SubjectTokenType:               "urn:ietf:params:oauth:token-type:jwt",
		TokenURL:                       stsURL,
		ServiceAccountImpersonationURL: iam + "/v1/projects/-/serviceAccounts/" + in.Config[GCPServiceAccount] + ":generateAccessToken",
		ServiceAccountImpersonationLifetimeSeconds: lifetime,
		Scopes: scopes,
		SubjectTokenSupplier: tokenSupplier(func(ctx context.Context) (string, error) {
			return r.Token(ctx, aud)
		}),
	})
	if err != nil {
		return Credentials{}, errs.E(errs.Invalid, "integration %s: %v", in.ID, err)
	}
	tok, err := ts.Token()
	if err != nil {
		if kind := cloudKind(last.get()); kind != errs.Invalid {
			return Credentials{}, errs.E(kind, "integration %s: Google could not answer the token exchange for %s: %s", in.ID, in.Config[GCPServiceAccount], googleMessage(err))
		}
		return Credentials{}, errs.E(errs.Invalid, "integration %s: Google refused the token exchange for %s: %s", in.ID, in.Config[GCPServiceAccount], googleMessage(err))
	}
	env := map[string]Var{"GOOGLE_OAUTH_ACCESS_TOKEN": secret(tok.AccessToken)}
	if p := in.Config[GCPProject]; p != "" {
		env["GOOGLE_PROJECT"], env["CLOUDSDK_CORE_PROJECT"], env["GOOGLE_CLOUD_PROJECT"] = setting(p), setting(p), setting(p)
	}
	// An external_account credential configuration for tools that do the
	// exchange themselves (client libraries, gcloud), reading the run's
	// token for Google's audience from a file beside it.
	subject, err := r.Token(ctx, aud)
	if err != nil {
		return Credentials{}, err
	}
	base := "gcp-" + in.ID
	cfgJSON, _ := json.MarshalIndent(map[string]any{
		"type":                              "external_account",
		"audience":                          "//iam.googleapis.com/" + in.Config[GCPProvider],
		"subject_token_type":                "urn:ietf:params:oauth:token-type:jwt",
		"token_url":                         stsURL,
		"service_account_impersonation_url": iam + "/v1/projects/-/serviceAccounts/" + in.Config[GCPServiceAccount] + ":generateAccessToken",
		"service_account_impersonation":     map[string]any{"token_lifetime_seconds": lifetime},
		"credential_source":                 map[string]any{"file": "{credentials_dir}/" + base + ".jwt"},
	}, "", "  ")
	env["GOOGLE_APPLICATION_CREDENTIALS"] = setting("{credentials_dir}/" + base + ".json")
	env["CLOUDSDK_AUTH_CREDENTIAL_FILE_OVERRIDE"] = env["GOOGLE_APPLICATION_CREDENTIALS"]
	files := map[string]FileContent{base + ".jwt": {Content: []byte(subject), Secret: true}, base + ".json": {Content: cfgJSON}}
	return Credentials{Env: env, Files: files, Identity: in.Config[GCPServiceAccount], Expires: tok.Expiry}, nil
}

// lastStatus is a transport that remembers the status of the last answer
// (0 when the last request got none).
type lastStatus struct {
	rt     http.RoundTripper
	mu     sync.Mutex
	status int
}

func (l *lastStatus) RoundTrip(req *http.Request) (*http.Response, error) {
	rt := l.rt
	if rt == nil {
		rt = http.DefaultTransport
	}
	resp, err := rt.RoundTrip(req)
	l.mu.Lock()
	defer l.mu.Unlock()
	l.status = 0
	if err == nil {
		l.status = resp.StatusCode
	}
	return resp, err
}

func (l *lastStatus) get() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.status
}

// googleMessage keeps the library's error short: Google's own message.
func googleMessage(err error) string {
	msg := err.Error()
	if i := strings.Index(msg, "Response: "); i >= 0 {
		return strings.TrimSpace(msg[i+len("Response: "):])
	}
	return msg
}

// Audience is the provider's audience.
func (m *GCPMinter) Audience(cfg map[string]string) string { return GCPAudienceOf(cfg) }
