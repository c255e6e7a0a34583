package integration

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/gantry-iac/gantry/internal/errs"
	"github.com/gantry-iac/gantry/internal/stack"
)

// Request is what a minter knows of the run it mints for.
type Request struct {
	RunID, RunType, StackID, SpaceID string
	Scope                            string // "read" (planning) or "write" (applying, tasks)
	// Token returns the run's OIDC token for an audience, of this scope.
	Token func(ctx context.Context, audience string) (string, error)
	// ManagedSecret returns the secret Gantry manages for the integration
	// (Azure managed mode), set by the service for such integrations.
	ManagedSecret func(ctx context.Context) (string, error)
	// Ready, if set, is waited for before anything is minted (and only
	// when some integration applies): its error stops Credentials, so
	// that the integrations can be looked up while the caller finishes
	// what must come first (the run's own token).
	Ready func() error
}

// Credentials are what a minter hands the run.
type Credentials struct {
	Env map[string]Var // environment variables
	// Files are files for the run (name -> content), written by the worker
	// in a directory of the job outside the workspace; in their contents
	// and in Env values, {credentials_dir} stands for that directory.
	Files   map[string]FileContent
	Expires time.Time
	// Identity names who the credentials act as (a role ARN), for the
	// audit trail.
	Identity string
	// Revoke, when set, says how the worker revokes the credentials when
	// the job ends (a Vault token).
	Revoke *Revoke
}

// Revoke kinds.
const RevokeVault = "vault"

// Revoke tells the worker how to revoke credentials at the end of a job:
// for RevokeVault, POST <Address>/v1/auth/token/revoke-self with the
// token in the variable TokenVar (and the namespace).
type Revoke struct {
	Kind, Address, Namespace, TokenVar string
	// Token is the credential itself, for the server to revoke what it
	// minted for a job that no worker gets (the worker is not sent it: it
	// reads TokenVar).
	Token string
}

// Minter validates settings of one integration type and mints
// credentials.
type Minter interface {
	Validate(cfg map[string]string) error
	Mint(ctx context.Context, in Integration, r Request) (Credentials, error)
	// Audience is the aud of the run token Mint asks for ("" when it
	// needs none), so that a worker minting on its own can be given it.
	Audience(cfg map[string]string) string
}

// OnWorker is the setting that makes the worker mint an integration's
// credentials itself ("true"): for private workers that reach a cloud (or
// hold an identity) the server does not. The server hands the worker the
// integration and a run token of its audience instead of credentials.
const OnWorker = "generate_on_worker"

// Delegated is an integration whose credentials the worker mints.
type Delegated struct {
	Integration Integration
	Token       string // the run's token for the minter's audience
}

// Var is the value of a variable a minter hands the run. A credential (a
// key, a token, a secret) is Secret: masked in the run's log and sealed to
// a private pool's key. A setting (a region, a project, an address, an id,
// a path) is not: it shows in the log like any plain variable.
type Var struct {
	Value  string
	Secret bool
}

func secret(v string) Var  { return Var{Value: v, Secret: true} }
func setting(v string) Var { return Var{Value: v} }

// EnvVar is one variable for the run.
type EnvVar struct {
	Name, Value string
	Secret      bool
}

// Credentials mints the credentials of every integration that applies to
// st for r.Scope (read attachments for planning, write for applying), in
// id order, and audits each issuance (never the credentials). A refusal
// by the cloud is an error naming the integration and carrying the
// cloud's message: the run fails at PREPARING with it.
func (s *Service) Credentials(ctx context.Context, st stack.Stack, r Request) (Minted, error) {
	applied, err := s.ForStack(ctx, st)
	if err != nil {
		return Minted{}, err
	}
	var m Minted
	// Whatever fails once something was minted revokes what was: no worker
	// will get the job, so none would revoke it.
	undo := func(err error) (Minted, error) { return Minted{}, s.undo(ctx, m, err) }
	ready := r.Ready
	// Which integration set each variable and file: a second one setting
	// the same would silently win (and only one Vault token would be
	// revoked by the worker, which finds tokens by variable).
	envBy, fileBy := map[string]string{}, map[string]string{}
	for _, a := range applied {
		if (r.Scope == "read" && !a.Attachment.Read) || (r.Scope != "read" && !a.Attachment.Write) {
			continue
		}
		if ready != nil {
			if err := ready(); err != nil {
				return Minted{}, err
			}
			ready = nil
		}
		minter, ok := s.Minters[a.Integration.Type]
		if !ok {
			return undo(errs.E(errs.Invalid, "integration %s: type %q is not supported", a.Integration.ID, a.Integration.Type))
		}
		if a.Integration.Config[OnWorker] == "true" {
			d := Delegated{Integration: a.Integration}
			if aud := minter.Audience(a.Integration.Config); aud != "" {
				if d.Token, err = r.Token(ctx, aud); err != nil {
					return undo(err)
				}
			}
			m.Delegated = append(m.Delegated, d)
			if err := s.db.Tx(ctx, func(ctx context.Context) error {
				return s.Audit.Record(ctx, "integration.delegated", "integration", a.Integration.ID, st.Space, nil,
					map[string]any{"integration": a.Integration.ID, "type": a.Integration.Type, "stack": st.ID, "run": r.RunID, "scope": r.Scope})
			}); err != nil {
				return undo(err)
			}
			continue
		}
		req := r
		if a.Integration.Type == Azure && a.Integration.Config[AzureMode] == AzureModeManaged {
			integ := a.Integration
			req.ManagedSecret = func(ctx context.Context) (string, error) { return s.managedSecret(ctx, integ) }
		}
		c, err := minter.Mint(ctx, a.Integration, req)
		if err != nil {
			if errs.KindOf(err) == errs.Internal {
				err = errs.Wrap(errs.Unavailable, err, "integration %s: minting credentials failed: %v", a.Integration.ID, err)
			}
			return undo(err)
		}
		if c.Revoke != nil {
			m.Revoke = append(m.Revoke, *c.Revoke)
		}
		if err := claimNames(envBy, "environment variable", a.Integration.ID, r.Scope, c.Env); err != nil {
			return undo(err)
		}
		if err := claimNames(fileBy, "credential file", a.Integration.ID, r.Scope, c.Files); err != nil {
			return undo(err)
		}
		files := make([]string, 0, len(c.Files))
		for name := range c.Files {
			files = append(files, name)
		}
		sort.Strings(files)
		for _, name := range files {
			m.Files = append(m.Files, File{Name: name, Content: c.Files[name].Content, Secret: c.Files[name].Secret})
		}
		names := make([]string, 0, len(c.Env))
		for k := range c.Env {
			names = append(names, k)
		}
		sort.Strings(names)
		for _, k := range names {
			m.Env = append(m.Env, EnvVar{Name: k, Value: c.Env[k].Value, Secret: c.Env[k].Secret})
		}
		ev := map[string]any{"integration": a.Integration.ID, "type": a.Integration.Type, "stack": st.ID, "run": r.RunID,
			"scope": r.Scope, "identity": c.Identity, "variables": names, "files": files, "expires_at": c.Expires.UTC()}
		if err := s.db.Tx(ctx, func(ctx context.Context) error {
			return s.Audit.Record(ctx, "integration.credentials", "integration", a.Integration.ID, st.Space, nil, ev)
		}); err != nil {
			return undo(err)
		}
	}
	return m, nil
}

// Discard revokes the credentials of m that can be revoked (Vault tokens),
// for a job that no worker gets (a worker revokes those of its jobs when
// they end). The others expire by themselves.
func (s *Service) Discard(ctx context.Context, m Minted) error {
	var client *http.Client
	if vm, ok := s.Minters[Vault].(*VaultMinter); ok {
		client = vm.HTTPClient
	}
	var all []error
	for _, rv := range m.Revoke {
		if rv.Kind != RevokeVault || rv.Token == "" {
			continue
		}
		if err := RevokeVaultToken(ctx, client, rv.Address, rv.Namespace, rv.Token); err != nil {
			all = append(all, err)
		}
	}
	return errors.Join(all...)
}

// undo discards what m holds after minting failed with err, and returns
// err; a revocation that fails too joins its cause, for the operator's
// log (the run sees err's message).
// claimNames records that integration id sets names (the keys of set) in
// by, and refuses names other integrations already set for the job,
// naming them all.
func claimNames[V any](by map[string]string, what, id, scope string, set map[string]V) error {
	names := make([]string, 0, len(set))
	for k := range set {
		names = append(names, k)
	}
	sort.Strings(names)
	var clash, others []string
	for _, k := range names {
		if other, ok := by[k]; ok {
			clash = append(clash, k)
			if !slices.Contains(others, other) {
				others = append(others, other)
			}
		}
	}
	if len(clash) > 0 {
		return errs.E(errs.Invalid, "integrations %s and %s both set the %s for this run's %s credentials: a job gets one value of each, so one integration would silently replace the other's; attach only one of them with %s access",
			strings.Join(others, ", "), id, plural(what, len(clash))+" "+strings.Join(clash, ", "), scope, scope)
	}
	for _, k := range names {
		by[k] = id
	}
	return nil
}

func plural(s string, n int) string {
	if n == 1 {
		return s
	}
	return s + "s"
}

func (s *Service) undo(ctx context.Context, m Minted, err error) error {
	derr := s.Discard(ctx, m)
	if derr == nil {
		return err
	}
	return errs.Wrap(errs.KindOf(err), errors.Join(err, fmt.Errorf("revoking the credentials minted before: %w", derr)), "%s", errs.Public(err))
}

// Minted is what the integrations of a stack give one job.
type Minted struct {
	Env       []EnvVar
	Files     []File
	Revoke    []Revoke
	Delegated []Delegated // minted by the worker
}

// MintOnWorker mints a delegated integration's credentials where the
// worker runs, with the token the server issued for it.
func MintOnWorker(ctx context.Context, minters map[string]Minter, d Delegated, r Request) (Credentials, error) {
	m, ok := minters[d.Integration.Type]
	if !ok {
		return Credentials{}, errs.E(errs.Invalid, "integration %s: type %q is not supported by this worker", d.Integration.ID, d.Integration.Type)
	}
	r.Token = func(context.Context, string) (string, error) { return d.Token, nil }
	return m.Mint(ctx, d.Integration, r)
}

// Builtin returns the built-in minters by type.
func Builtin() map[string]Minter {
	return map[string]Minter{AWS: &AWSMinter{}, Vault: &VaultMinter{}, GCP: &GCPMinter{}, Azure: &AzureMinter{}, OIDC: OIDCMinter{}}
}

// File is a credential file for the run.
type File struct {
	Name    string
	Content []byte
	Secret  bool // masked in logs (a token); a configuration naming paths is not
}

// cloudKind classifies a cloud's failure to mint from the HTTP status of
// its answer (0: none came): a refusal (4xx) is Invalid, the run's trust
// is not what the cloud wants; no answer, throttling (429) or a failing
// cloud (5xx) is Unavailable, nobody's fault but the network's or the
// cloud's.
func cloudKind(status int) errs.Kind {
	if status == 0 || status == http.StatusTooManyRequests || status >= 500 {
		return errs.Unavailable
	}
	return errs.Invalid
}

// FileContent is a credential file a minter makes.
type FileContent struct {
	Content []byte
	Secret  bool
}
