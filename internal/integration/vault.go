package integration

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"time"

	vault "github.com/hashicorp/vault/api"

	"github.com/gantry-iac/gantry/internal/errs"
)

// Vault (or OpenBao) integration settings.
const (
	Vault          = "vault"
	VaultAddress   = "address"   // required: https://vault.example.com:8200
	VaultMount     = "mount"     // the JWT auth mount, default "jwt"
	VaultRole      = "role"      // required: the JWT auth role
	VaultNamespace = "namespace" // optional (Vault Enterprise, OpenBao)
	VaultAudience  = "audience"  // the token's aud, default "vault"
)

var mountRE = regexp.MustCompile(`^[\w.-]+(/[\w.-]+)*$`)

// VaultMinter logs in to Vault's JWT auth method with the run's OIDC token;
// the run gets VAULT_TOKEN (and VAULT_ADDR, VAULT_NAMESPACE). The worker
// revokes the token when the job ends (Credentials.Revoke).
type VaultMinter struct {
	HTTPClient *http.Client
}

// Validate checks a Vault integration's settings.
func (m *VaultMinter) Validate(cfg map[string]string) error {
	known := map[string]bool{VaultAddress: true, VaultMount: true, VaultRole: true, VaultNamespace: true, VaultAudience: true}
	for k := range cfg {
		if !known[k] {
			return errs.E(errs.Invalid, "unknown Vault setting %q (known: address, mount, role, namespace, audience)", k)
		}
	}
	if u, err := url.Parse(cfg[VaultAddress]); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return errs.E(errs.Invalid, "address must be the Vault server's http(s) URL")
	}
	if cfg[VaultRole] == "" || len(cfg[VaultRole]) > 255 {
		return errs.E(errs.Invalid, "role (the JWT auth role) is required")
	}
	if mt := cfg[VaultMount]; mt != "" {
		bad := !mountRE.MatchString(mt)
		for _, seg := range strings.Split(mt, "/") {
			bad = bad || seg == "." || seg == ".."
		}
		if bad {
			return errs.E(errs.Invalid, "mount %q is not a Vault mount path", mt)
		}
	}
	return nil
}

// Mint logs in with the run's token.
func (m *VaultMinter) Mint(ctx context.Context, in Integration, r Request) (Credentials, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	aud := in.Config[VaultAudience]
	if aud == "" {
		aud = "vault"
	}
	tok, err := r.Token(ctx, aud)
	if err != nil {
		return Credentials{}, err
	}
	cfg := vault.DefaultConfig()
	cfg.Address = in.Config[VaultAddress]
	cfg.MaxRetries = 1
	if m.HTTPClient != nil {
		cfg.HttpClient = m.HTTPClient
	}
	c, err := vault.NewClient(cfg)
	if err != nil {
		return Credentials{}, errs.E(errs.Invalid, "integration %s: %v", in.ID, err)
	}
	c.ClearToken() // never a token from the server's environment
	if ns := in.Config[VaultNamespace]; ns != "" {
		c.SetNamespace(ns)
	}
	mount := in.Config[VaultMount]
	if mount == "" {
		mount = "jwt"
	}
	sec, err := c.Logical().WriteWithContext(ctx, "auth/"+strings.Trim(mount, "/")+"/login", map[string]any{"role": in.Config[VaultRole], "jwt": tok})
	if err != nil {
		status := 0
		var re *vault.ResponseError
		if errors.As(err, &re) {
			status = re.StatusCode
		}
		if kind := cloudKind(status); kind != errs.Invalid {
			return Credentials{}, errs.E(kind, "integration %s: Vault at %s could not answer the JWT login (role %s): %s", in.ID, in.Config[VaultAddress], in.Config[VaultRole], vaultMessage(err))
		}
		return Credentials{}, errs.E(errs.Invalid, "integration %s: Vault refused the JWT login at %s (role %s): %s", in.ID, in.Config[VaultAddress], in.Config[VaultRole], vaultMessage(err))
	}
	if sec == nil || sec.Auth == nil || sec.Auth.ClientToken == "" {
		return Credentials{}, errs.E(errs.Unavailable, "integration %s: Vault answered the login without a token", in.ID)
	}
	env := map[string]Var{"VAULT_TOKEN": secret(sec.Auth.ClientToken), "VAULT_ADDR": setting(in.Config[VaultAddress])}
	if ns := in.Config[VaultNamespace]; ns != "" {
		env["VAULT_NAMESPACE"] = setting(ns)
	}
	return Credentials{Env: env, Identity: "vault role " + in.Config[VaultRole],
		Expires: time.Now().Add(time.Duration(sec.Auth.LeaseDuration) * time.Second),
		Revoke: &Revoke{Kind: RevokeVault, Address: in.Config[VaultAddress], Namespace: in.Config[VaultNamespace], TokenVar: "VAULT_TOKEN",
			Token: sec.Auth.ClientToken}}, nil
}

// RevokeVaultToken revokes a Vault token with itself
// (auth/token/revoke-self) at address, in namespace ("" for none), within
// 10 seconds, even when ctx is already cancelled. client nil is Go's
// default.
func RevokeVaultToken(ctx context.Context, client *http.Client, address, namespace, token string) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimSuffix(address, "/")+"/v1/auth/token/revoke-self", nil)
	if err != nil {
		return err
	}
	req.Header.Set("X-Vault-Token", token)
	if namespace != "" {
		req.Header.Set("X-Vault-Namespace", namespace)
	}
	if client == nil {
		client = http.DefaultClient
	}
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode >= 300 {
		return fmt.Errorf("Vault at %s answered %s to revoke-self", address, resp.Status)
	}
	return nil
}

// vaultMessage is Vault's own error text.
func vaultMessage(err error) string {
	var re *vault.ResponseError
	if errors.As(err, &re) {
		return strings.Join(re.Errors, "; ") + " (" + http.StatusText(re.StatusCode) + ")"
	}
	return err.Error()
}

// Audience is the JWT login's aud.
func (m *VaultMinter) Audience(cfg map[string]string) string {
	if a := cfg[VaultAudience]; a != "" {
		return a
	}
	return "vault"
}
