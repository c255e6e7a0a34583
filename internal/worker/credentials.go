package worker

// The run's cloud credentials in the worker: its OIDC token file, the
// credentials minted for the apply, delegated tokens, credential files, and
// their revocation when the job ends.

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"

	"github.com/gantry-iac/gantry/internal/errs"
	"github.com/gantry-iac/gantry/internal/integration"
	"github.com/gantry-iac/gantry/internal/workerapi"
)

// oidcTokenFile is where the run's OIDC token is written for tools that
// read it from a file (GANTRY_OIDC_TOKEN_FILE): the job's private
// directory, outside the workspace.
func oidcTokenFile(jobDir string) string { return filepath.Join(jobDir, "oidc-token") }

// writeOIDCToken writes the job's current OIDC token to its file.
func (j *jobRun) writeOIDCToken() error {
	if j.job.OIDCToken == "" {
		return nil
	}
	if err := os.WriteFile(oidcTokenFile(j.dir), []byte(j.job.OIDCToken), 0o600); err != nil {
		return fail("writing the OIDC token file: %v", err)
	}
	return nil
}

// applyCredentials takes what the server sent for the apply: the cloud
// integrations' write credentials (which replace all of the plan's: an
// integration attached for read only gives the apply nothing; the plan's
// revocable ones are revoked), those the worker mints itself, and a fresh
// OIDC token of scope write; the secret ones masked from now on.
func (j *jobRun) applyCredentials(ctx context.Context, resp workerapi.PlannedResponse) error {
	j.revokeCredentials()
	j.job.Revoke = resp.Revoke
	for i := range resp.CredentialFiles {
		f := &resp.CredentialFiles[i]
		if f.Sealed {
			pt, err := j.w.openValue("credfile:"+j.job.RunID+":"+f.Path, string(f.Content))
			if err != nil {
				return err
			}
			f.Content, f.Sealed = []byte(pt), false
		}
	}
	j.masker.Add(secretFileMasks(resp.CredentialFiles)...)
	j.job.CredentialFiles = resp.CredentialFiles
	kept := j.job.Env[:0]
	for _, v := range j.job.Env {
		if v.Rank != -1 {
			kept = append(kept, v)
		}
	}
	j.job.Env = kept
	for _, v := range resp.Env {
		if v.Sealed {
			pt, err := j.w.openValue(envInfo(j.job.RunID, v.Name), v.Value)
			if err != nil {
				return err
			}
			v.Value, v.Sealed = pt, false
		}
		if v.Secret {
			j.masker.Add(v.Value)
		}
		j.job.Env = append(j.job.Env, v)
	}
	if err := j.mintDelegated(ctx, resp.Delegated, "write"); err != nil {
		return err
	}
	if err := j.writeCredentialFiles(); err != nil {
		return err
	}
	if resp.OIDCToken == "" {
		return nil
	}
	tok := resp.OIDCToken
	if resp.OIDCTokenSealed {
		var err error
		if tok, err = j.w.openValue("oidc-write:"+j.job.RunID, tok); err != nil {
			return err
		}
	}
	j.masker.Add(tok)
	j.job.OIDCToken = tok
	return j.writeOIDCToken()
}

// mintDelegated mints, here, the credentials of the integrations that say
// generate_on_worker, with the run tokens the server issued for them: a
// refusal fails the job with the cloud's message.
func (j *jobRun) mintDelegated(ctx context.Context, ds []workerapi.Delegation, scope string) error {
	for _, d := range ds {
		tok := d.Token
		if d.TokenSealed {
			var err error
			if tok, err = j.w.openValue("delegated:"+j.job.RunID+":"+d.ID, tok); err != nil {
				return err
			}
		}
		j.masker.Add(tok)
		c, err := integration.MintOnWorker(ctx, integration.Builtin(), integration.Delegated{
			Integration: integration.Integration{ID: d.ID, Type: d.Type, Config: d.Config}, Token: tok},
			integration.Request{RunID: j.job.RunID, RunType: j.job.RunType, StackID: j.job.StackID, SpaceID: j.job.SpaceID, Scope: scope})
		if err != nil {
			return fail("%s (minted on this worker)", errs.Public(err))
		}
		names := make([]string, 0, len(c.Env))
		for k := range c.Env {
			names = append(names, k)
		}
		sort.Strings(names)
		if err := j.clashes(d.ID, names, c); err != nil {
			return err
		}
		for _, k := range names {
			v := c.Env[k]
			if v.Secret {
				j.masker.Add(v.Value)
			}
			j.job.Env = append(j.job.Env, workerapi.EnvVar{Name: k, Value: v.Value, Secret: v.Secret, Rank: -1})
		}
		for name, f := range c.Files {
			if f.Secret {
				j.masker.Add(string(f.Content))
			}
			j.job.CredentialFiles = append(j.job.CredentialFiles, workerapi.File{Path: name, Content: f.Content, Secret: f.Secret})
		}
		if c.Revoke != nil {
			j.job.Revoke = append(j.job.Revoke, workerapi.Revoke{Kind: c.Revoke.Kind, Address: c.Revoke.Address, Namespace: c.Revoke.Namespace, TokenVar: c.Revoke.TokenVar})
		}
		j.log.Printf("Minted the credentials of integration %s on this worker (%s).", d.ID, scope)
	}
	return nil
}

// clashes refuses credentials minted here for integration id that set a
// variable or file another integration already set for the job: one would
// silently replace the other (and only one Vault token would be revoked,
// as tokens are found by variable). What c holds that can be revoked is
// revoked at once; the job's earlier credentials are revoked when it ends.
func (j *jobRun) clashes(id string, names []string, c integration.Credentials) error {
	var clash []string
	for _, v := range j.job.Env {
		if v.Rank == -1 && slices.Contains(names, v.Name) && !slices.Contains(clash, v.Name) {
			clash = append(clash, v.Name)
		}
	}
	for _, f := range j.job.CredentialFiles {
		if _, ok := c.Files[f.Path]; ok {
			clash = append(clash, "file "+f.Path)
		}
	}
	if len(clash) == 0 {
		return nil
	}
	if rv := c.Revoke; rv != nil && rv.Kind == integration.RevokeVault {
		if err := integration.RevokeVaultToken(context.Background(), nil, rv.Address, rv.Namespace, c.Env[rv.TokenVar].Value); err != nil {
			j.w.cfg.Log.Warn("revoking a Vault token minted on this worker failed (it expires by itself)", "run_id", j.job.RunID, "err", err)
		}
	}
	sort.Strings(clash)
	return fail("integration %s (minted on this worker) sets %s, which another integration of the stack already set for this job: a job gets one value of each, so one would silently replace the other; attach only one of them for this scope",
		id, strings.Join(clash, ", "))
}

// revokeCredentials revokes the job's revocable integration credentials
// (Vault tokens, with their own token: revoke-self) and forgets them.
// Failures are logged, not fatal: the credentials expire anyway.
func (j *jobRun) revokeCredentials() {
	for _, rv := range j.job.Revoke {
		if rv.Kind != "vault" {
			continue
		}
		token := ""
		for _, v := range j.job.Env {
			if v.Name == rv.TokenVar && v.Rank == -1 {
				token = v.Value
			}
		}
		if token == "" {
			continue
		}
		if err := integration.RevokeVaultToken(context.Background(), nil, rv.Address, rv.Namespace, token); err != nil {
			j.w.cfg.Log.Warn("revoking a Vault token at the end of the job failed (it expires by itself)", "run_id", j.job.RunID, "err", err)
		}
	}
	j.job.Revoke = nil
}

// credentialsDir is where the integrations' files of a job live: in the
// job's directory, outside the workspace.
func credentialsDir(jobDir string) string { return filepath.Join(jobDir, "credentials") }

// writeCredentialFiles (re)writes the job's credential files, with
// {credentials_dir} replaced by their directory.
func (j *jobRun) writeCredentialFiles() error {
	dir := credentialsDir(j.dir)
	if err := os.RemoveAll(dir); err != nil {
		return fail("clearing the credential files: %v", err)
	}
	if len(j.job.CredentialFiles) == 0 {
		return nil
	}
	if err := os.Mkdir(dir, 0o700); err != nil {
		return fail("writing the credential files: %v", err)
	}
	for _, f := range j.job.CredentialFiles {
		name := filepath.Base(f.Path)
		if name != f.Path || name == "." || name == ".." {
			return fail("credential file name %q is not a plain name", f.Path)
		}
		content := strings.ReplaceAll(string(f.Content), "{credentials_dir}", dir)
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o600); err != nil {
			return fail("writing the credential file %s: %v", name, err)
		}
	}
	return nil
}
