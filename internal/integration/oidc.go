package integration

import (
	"context"
	"slices"
	"strings"
	"time"

	"github.com/gantry-iac/gantry/internal/errs"
	"github.com/gantry-iac/gantry/internal/id"
	"github.com/gantry-iac/gantry/internal/runenv"
)

// Generic OIDC integration settings: any other provider that trusts
// Gantry's tokens just gets a token of its audience.
const (
	OIDC         = "oidc"
	OIDCAudience = "audience" // required
	OIDCVariable = "variable" // the variable holding the token, default OIDC_TOKEN_<ID>
)

var varNameRE = id.MustPattern(`^[A-Za-z_][A-Za-z0-9_]*$`, 1, 128)

// OIDCMinter hands the run a token for the integration's audience.
type OIDCMinter struct{}

// Validate checks a generic OIDC integration's settings.
func (OIDCMinter) Validate(cfg map[string]string) error {
	for k := range cfg {
		if k != OIDCAudience && k != OIDCVariable {
			return errs.E(errs.Invalid, "unknown OIDC setting %q (known: audience, variable)", k)
		}
	}
	if a := cfg[OIDCAudience]; a == "" || len(a) > 512 {
		return errs.E(errs.Invalid, "audience is required")
	}
	if v := cfg[OIDCVariable]; v != "" {
		if !varNameRE.MatchString(v) {
			return errs.E(errs.Invalid, "variable %q must be an environment variable name (letters, digits and _, not starting with a digit)", v)
		}
		if why := refusedVariable(v); why != "" {
			return errs.E(errs.Invalid, "variable %q: %s; name a variable of your own (default OIDC_TOKEN_<ID>)", v, why)
		}
	}
	return nil
}

// Names a generic OIDC integration's token may not take. An integration's
// variables win over the stack's and its contexts', so a token in one of
// these would break every run it applies to, or pass itself off as
// something else: Gantry's own variables, OpenTofu's settings, the clouds'
// namespaces (where the other integrations put their credentials and the
// SDKs look for them), and what changes how any program runs.
var (
	refusedPrefixes = []struct{ prefix, owner string }{
		{"TF_", "OpenTofu's settings"},
		{"AWS_", "a cloud's credentials and settings"}, {"ARM_", "a cloud's credentials and settings"},
		{"AZURE_", "a cloud's credentials and settings"}, {"GOOGLE_", "a cloud's credentials and settings"},
		{"CLOUDSDK_", "a cloud's credentials and settings"}, {"VAULT_", "Vault's credentials and settings"},
		{"LD_", "the dynamic linker's settings"}, {"DYLD_", "the dynamic linker's settings"},
	}
	refusedNames = []string{"PATH", "HOME", "USER", "LOGNAME", "SHELL", "PWD", "TMPDIR", "LANG", "IFS", "ENV", "BASH_ENV",
		"HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "ALL_PROXY", "SSL_CERT_FILE", "SSL_CERT_DIR"}
)

// refusedVariable says why a generic OIDC integration may not set name
// ("" when it may). Names compare without regard to case (http_proxy is
// read as well as HTTP_PROXY).
func refusedVariable(name string) string {
	if why := runenv.Reserved(name); why != "" {
		return "it uses " + why + " (Gantry sets it in every run)"
	}
	upper := strings.ToUpper(name)
	for _, p := range refusedPrefixes {
		if strings.HasPrefix(upper, p.prefix) {
			return p.prefix + "* are " + p.owner
		}
	}
	if slices.Contains(refusedNames, upper) {
		return "it changes how every program of the run behaves"
	}
	return ""
}

// Mint issues the token.
func (OIDCMinter) Mint(ctx context.Context, in Integration, r Request) (Credentials, error) {
	tok, err := r.Token(ctx, in.Config[OIDCAudience])
	if err != nil {
		return Credentials{}, err
	}
	name := in.Config[OIDCVariable]
	if name == "" {
		name = "OIDC_TOKEN_" + strings.ToUpper(strings.ReplaceAll(in.ID, "-", "_"))
	} else if why := refusedVariable(name); why != "" {
		// Set before the rule: refused until the integration is changed.
		return Credentials{}, errs.E(errs.Invalid, "integration %s: variable %q: %s; change it with gantry integration update --id %s --set variable=NAME", in.ID, name, why, in.ID)
	}
	return Credentials{Env: map[string]Var{name: secret(tok)}, Identity: "aud " + in.Config[OIDCAudience], Expires: time.Now().Add(time.Hour)}, nil
}

// Audience is the configured one.
func (OIDCMinter) Audience(cfg map[string]string) string { return cfg[OIDCAudience] }
