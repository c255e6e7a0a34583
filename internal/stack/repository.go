package stack

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"

	"github.com/gantry-iac/gantry/internal/db"
	"github.com/gantry-iac/gantry/internal/errs"
	"github.com/gantry-iac/gantry/internal/redact"
	"github.com/gantry-iac/gantry/internal/secrets"
)

func repoAAD(stackID string) string { return "stack-repository:" + stackID }

// repositoryColumn is where a repository URL carrying a credential is
// kept sealed (see Stack.Repository).
var repositoryColumn = secrets.SealedColumn{Table: "stacks", Column: "repository_sealed", Keys: []string{"id"},
	Encoding: secrets.Base64, AAD: func(v []any) string { return repoAAD(fmt.Sprint(v[0])) }}

// takeRepository checks a repository given to Create or Update and keeps
// its credential, if any, sealed: st.Repository becomes the URL as shown.
func (s *Service) takeRepository(st *Stack) error {
	if redact.HasHidden(st.Repository) {
		return errs.E(errs.Invalid, "repository %q has %s in place of its credential: give the URL with the credential itself "+
			"(to keep the stored one, leave the repository as it is shown)", st.Repository, redact.Hidden)
	}
	if relativePath(st.Repository) {
		return errs.E(errs.Invalid, "repository %q is a relative path, which workers would resolve against their own working directory: "+
			"give an absolute path (/srv/git/infra.git), a file:// URL or a remote URL", st.Repository)
	}
	if host, ok := fileURLHost(st.Repository); ok && host != "" && !strings.EqualFold(host, "localhost") {
		return errs.E(errs.Invalid, "repository %q is a file:// URL naming %q as its host (git would not read it as the path it looks like): "+
			"write a local repository as file:///absolute/path (three slashes) or as the absolute path itself", st.Repository, host)
	}
	st.repoSealed, st.repoClear = "", ""
	if shown, secret := redact.Repository(st.Repository); len(secret) > 0 {
		st.repoSealed = s.box.SealString(st.Repository, repoAAD(st.ID))
		st.Repository = shown
	}
	return nil
}

// relativePath reports whether git would take repo for a path relative to
// its working directory: not a URL, not an scp-like address (host:path,
// a ':' before any '/') and not absolute.
func relativePath(repo string) bool {
	if strings.Contains(repo, "://") || filepath.IsAbs(repo) {
		return false
	}
	colon := strings.Index(repo, ":")
	return colon < 0 || strings.Contains(repo[:colon], "/")
}

// fileURLHost returns the host part of a file:// URL (ok false for
// anything else): "" in file:///srv/git/infra.git, "repos" in
// file://repos/infra.
func fileURLHost(repo string) (host string, ok bool) {
	const scheme = "file://"
	if len(repo) < len(scheme) || !strings.EqualFold(repo[:len(scheme)], scheme) {
		return "", false
	}
	host, _, _ = strings.Cut(repo[len(scheme):], "/")
	return host, true
}

// CloneURL returns the URL a worker clones st from: its Repository, with
// the credential that is shown hidden.
func (s *Service) CloneURL(st Stack) (string, error) {
	switch {
	case st.repoSealed != "":
		u, err := s.box.OpenString(st.repoSealed, repoAAD(st.ID))
		if err != nil {
			return "", fmt.Errorf("stack %s: opening its repository URL: %w", st.ID, err)
		}
		return u, nil
	case st.repoClear != "":
		return st.repoClear, nil
	}
	return st.Repository, nil
}

// SealRepositories seals the credentials of repository URLs stored in the
// clear by an older version (run when the server starts). A row changed
// meanwhile is left for the next start (or its next update).
func (s *Service) SealRepositories(ctx context.Context) (int, error) {
	legacy, err := db.Collect(ctx, s.db, scan, `SELECT `+cols+` FROM stacks WHERE repository_sealed = '' AND repository LIKE '%@%'`)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, st := range legacy {
		if st.repoClear == "" {
			continue
		}
		res, err := s.db.Exec(ctx, `UPDATE stacks SET repository = $2, repository_sealed = $3 WHERE id = $1 AND repository = $4 AND repository_sealed = ''`,
			st.ID, st.Repository, s.box.SealString(st.repoClear, repoAAD(st.ID)), st.repoClear)
		if err != nil {
			return n, err
		}
		if k, _ := res.RowsAffected(); k > 0 {
			n++
		}
	}
	return n, nil
}
