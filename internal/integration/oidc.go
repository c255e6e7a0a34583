package integration

import (
	"context"
	"strings"
	"time"

	"github.com/gantry-iac/gantry/internal/errs"
	"github.com/gantry-iac/gantry/internal/id"
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
	if v := cfg[OIDCVariable]; v != "" && (!varNameRE.MatchString(v) || strings.HasPrefix(v, "GANTRY_") || strings.HasPrefix(v, "TF_")) {
		return errs.E(errs.Invalid, "variable %q must be an environment variable name, not GANTRY_* or TF_*", v)
	}
	return nil
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
	}
	return Credentials{Env: map[string]Var{name: secret(tok)}, Identity: "aud " + in.Config[OIDCAudience], Expires: time.Now().Add(time.Hour)}, nil
}

// Audience is the configured one.
func (OIDCMinter) Audience(cfg map[string]string) string { return cfg[OIDCAudience] }
