package integration

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"time"

	"github.com/gantry-iac/gantry/internal/errs"
)

// Azure integration settings (Microsoft Entra workload identity federation).
const (
	Azure             = "azure"
	AzureTenant       = "tenant_id"       // required
	AzureClient       = "client_id"       // required: the app registration (or managed identity) with the federated credential
	AzureSubscription = "subscription_id" // optional: ARM_SUBSCRIPTION_ID
	AzureAudience     = "audience"        // the token's aud, default api://AzureADTokenExchange
	AzureAccessToken  = "access_token"    // "true": also exchange the token for an access token (ARM_ACCESS_TOKEN), checked at PREPARING
	AzureScope        = "scope"           // of that access token, default https://management.azure.com/.default
	AzureAuthority    = "authority"       // default https://login.microsoftonline.com
)

var guidRE = regexp.MustCompile(`^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$`)

// AzureMinter hands the run the azurerm provider's OIDC settings
// (ARM_USE_OIDC, ARM_OIDC_TOKEN: the run's token for Entra's audience) and,
// when asked, exchanges the token at Entra's token endpoint (the OAuth 2.0
// client credentials grant with client_assertion = the run's token, as
// MSAL does) for an access token, so that a federated credential that does
// not match fails the run at PREPARING with Entra's message.
type AzureMinter struct {
	HTTPClient *http.Client
}

// Validate checks an Azure integration's settings.
func (m *AzureMinter) Validate(cfg map[string]string) error {
	known := map[string]bool{AzureTenant: true, AzureClient: true, AzureSubscription: true, AzureAudience: true, AzureAccessToken: true,
		AzureScope: true, AzureAuthority: true, AzureMode: true}
	for k := range cfg {
		if !known[k] {
			return errs.E(errs.Invalid, "unknown Azure setting %q (known: tenant_id, client_id, subscription_id, mode, audience, access_token, scope, authority)", k)
		}
	}
	for _, k := range []string{AzureTenant, AzureClient} {
		if !guidRE.MatchString(cfg[k]) {
			return errs.E(errs.Invalid, "%s must be a GUID", k)
		}
	}
	if s := cfg[AzureSubscription]; s != "" && !guidRE.MatchString(s) {
		return errs.E(errs.Invalid, "subscription_id must be a GUID")
	}
	switch cfg[AzureMode] {
	case "", AzureModeOIDC, AzureModeManaged:
	default:
		return errs.E(errs.Invalid, "mode must be oidc or managed")
	}
	if v := cfg[AzureAccessToken]; v != "" && v != "true" && v != "false" {
		return errs.E(errs.Invalid, "access_token must be true or false")
	}
	if a := cfg[AzureAuthority]; a != "" {
		if u, err := url.Parse(a); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			return errs.E(errs.Invalid, "authority must be an http(s) URL")
		}
	}
	return nil
}

// Mint issues the run's token for Entra and, when asked, exchanges it.
func (m *AzureMinter) Mint(ctx context.Context, in Integration, r Request) (Credentials, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	clientID, tenant := setting(in.Config[AzureClient]), setting(in.Config[AzureTenant])
	env := map[string]Var{"ARM_CLIENT_ID": clientID, "ARM_TENANT_ID": tenant, "AZURE_CLIENT_ID": clientID, "AZURE_TENANT_ID": tenant}
	form := url.Values{"client_id": {in.Config[AzureClient]}, "grant_type": {"client_credentials"}}
	if in.Config[AzureMode] == AzureModeManaged {
		if r.ManagedSecret == nil {
			return Credentials{}, errs.E(errs.Unavailable, "integration %s: no managed secret here", in.ID)
		}
		clientSecret, err := r.ManagedSecret(ctx)
		if err != nil {
			return Credentials{}, err
		}
		env["ARM_CLIENT_SECRET"], env["AZURE_CLIENT_SECRET"] = secret(clientSecret), secret(clientSecret)
		form.Set("client_secret", clientSecret)
	} else {
		tok, err := r.Token(ctx, m.Audience(in.Config))
		if err != nil {
			return Credentials{}, err
		}
		env["ARM_USE_OIDC"], env["ARM_OIDC_TOKEN"] = setting("true"), secret(tok)
		form.Set("client_assertion_type", "urn:ietf:params:oauth:client-assertion-type:jwt-bearer")
		form.Set("client_assertion", tok)
	}
	if s := in.Config[AzureSubscription]; s != "" {
		env["ARM_SUBSCRIPTION_ID"], env["AZURE_SUBSCRIPTION_ID"] = setting(s), setting(s)
	}
	c := Credentials{Env: env, Identity: "azure app " + in.Config[AzureClient], Expires: time.Now().Add(time.Hour)}
	if in.Config[AzureAccessToken] != "true" {
		return c, nil
	}
	authority := strings.TrimSuffix(in.Config[AzureAuthority], "/")
	if authority == "" {
		authority = "https://login.microsoftonline.com"
	}
	scope := in.Config[AzureScope]
	if scope == "" {
		scope = "https://management.azure.com/.default"
	}
	form.Set("scope", scope)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, authority+"/"+url.PathEscape(in.Config[AzureTenant])+"/oauth2/v2.0/token", strings.NewReader(form.Encode()))
	if err != nil {
		return Credentials{}, err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	client := m.HTTPClient
	if client == nil {
		client = &http.Client{Timeout: 30 * time.Second}
	}
	resp, err := client.Do(req)
	if err != nil {
		return Credentials{}, errs.E(errs.Unavailable, "integration %s: Microsoft Entra cannot be reached: %v", in.ID, err)
	}
	defer resp.Body.Close()
	var out struct {
		AccessToken string `json:"access_token"`
		ExpiresIn   int    `json:"expires_in"`
		Error       string `json:"error"`
		Description string `json:"error_description"`
	}
	_ = json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&out)
	if resp.StatusCode != http.StatusOK || out.AccessToken == "" {
		msg := out.Error + ": " + out.Description
		if out.Error == "" {
			msg = resp.Status
		}
		if kind := cloudKind(resp.StatusCode); kind != errs.Invalid {
			return Credentials{}, errs.E(kind, "integration %s: Microsoft Entra could not answer the token exchange for client %s: %s", in.ID, in.Config[AzureClient], firstLine(msg))
		}
		return Credentials{}, errs.E(errs.Invalid, "integration %s: Microsoft Entra refused the token exchange for client %s: %s", in.ID, in.Config[AzureClient], firstLine(msg))
	}
	env["ARM_ACCESS_TOKEN"] = secret(out.AccessToken)
	c.Expires = time.Now().Add(time.Duration(out.ExpiresIn) * time.Second)
	return c, nil
}

func firstLine(s string) string {
	if i := strings.IndexAny(s, "\r\n"); i >= 0 {
		return s[:i]
	}
	return s
}

// Audience is Entra's token exchange audience ("" in managed mode).
func (m *AzureMinter) Audience(cfg map[string]string) string {
	if cfg[AzureMode] == AzureModeManaged {
		return ""
	}
	if a := cfg[AzureAudience]; a != "" {
		return a
	}
	return "api://AzureADTokenExchange"
}
