package stack_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/gantry-iac/gantry/internal/db"
	"github.com/gantry-iac/gantry/internal/db/dbtest"
	"github.com/gantry-iac/gantry/internal/errs"
	"github.com/gantry-iac/gantry/internal/stack"
)

const (
	password = "S3cretPassw0rd"
	credURL  = "http://alice:" + password + "@git.example.com:8080/infra.git"
	shownURL = "http://*****@git.example.com:8080/infra.git"
)

// rawRepository is what the stacks table holds of a stack's repository.
func rawRepository(t *testing.T, f *fixture, stackID string) (repo, sealed string) {
	t.Helper()
	if err := f.d.QueryRow(f.ctx, `SELECT repository, repository_sealed FROM stacks WHERE id = $1`, stackID).Scan(&repo, &sealed); err != nil {
		t.Fatal(err)
	}
	return repo, sealed
}

func cloneURL(t *testing.T, f *fixture, stackID string) string {
	t.Helper()
	st, err := f.stacks.Get(f.ctx, stackID)
	if err != nil {
		t.Fatal(err)
	}
	u, err := f.stacks.CloneURL(st)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// A credential in a repository URL is kept sealed: the stack shows the URL
// with it hidden (and so does the audit trail); workers clone with it.
func TestRepositoryCredentialSealed(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, d *db.DB) {
		f := newFixture(t, d)
		var audited strings.Builder
		f.stacks.Audit = func(_ context.Context, action, _, _, _ string, before, after any) error {
			b, _ := json.Marshal([]any{action, before, after})
			audited.Write(b)
			return nil
		}
		created := f.create(t, stack.Stack{ID: "creds", Repository: credURL})
		if created.Repository != shownURL {
			t.Errorf("created repository = %q, want %q", created.Repository, shownURL)
		}
		if got, _ := f.stacks.Get(f.ctx, "creds"); got.Repository != shownURL {
			t.Errorf("Get repository = %q, want %q", got.Repository, shownURL)
		}
		if list, _, _ := f.stacks.List(f.ctx, stack.Filter{Limit: 10}); len(list) != 1 || list[0].Repository != shownURL {
			t.Errorf("List = %+v, want the repository %q", list, shownURL)
		}
		if u := cloneURL(t, f, "creds"); u != credURL {
			t.Errorf("CloneURL = %q, want %q", u, credURL)
		}
		if repo, sealed := rawRepository(t, f, "creds"); repo != shownURL || sealed == "" || strings.Contains(sealed, password) {
			t.Errorf("stored repository = %q, sealed %q; want %q and the URL sealed", repo, sealed, shownURL)
		}

		// Written back as shown (a read-modify-write client), or left
		// alone, the credential stays.
		for _, fn := range []func(*stack.Stack){
			func(s *stack.Stack) { s.Repository = shownURL; s.Description = "x" },
			func(s *stack.Stack) { s.Branch = "dev" },
		} {
			if _, err := f.stacks.Update(f.ctx, "creds", func(s *stack.Stack) error { fn(s); return nil }); err != nil {
				t.Fatalf("Update: %v", err)
			}
			if u := cloneURL(t, f, "creds"); u != credURL {
				t.Errorf("after an update, CloneURL = %q, want %q", u, credURL)
			}
		}
		// The hidden form anywhere else is refused: the credential never
		// follows the URL to another host.
		for _, repo := range []string{"http://*****@evil.example.com/infra.git", "https://alice:*****@git.example.com/infra.git"} {
			_, err := f.stacks.Update(f.ctx, "creds", func(s *stack.Stack) error { s.Repository = repo; return nil })
			wantKind(t, err, errs.Invalid)
			_, err = f.stacks.Create(f.ctx, stack.Stack{ID: "copy", Repository: repo})
			wantKind(t, err, errs.Invalid)
		}
		// A new credential replaces the old one; a URL without one drops it.
		newURL := strings.Replace(credURL, password, "N3wPassw0rd", 1)
		if _, err := f.stacks.Update(f.ctx, "creds", func(s *stack.Stack) error { s.Repository = newURL; return nil }); err != nil {
			t.Fatal(err)
		}
		if u := cloneURL(t, f, "creds"); u != newURL {
			t.Errorf("CloneURL = %q, want %q", u, newURL)
		}
		if _, err := f.stacks.Update(f.ctx, "creds", func(s *stack.Stack) error { s.Repository = repo; return nil }); err != nil {
			t.Fatal(err)
		}
		if u := cloneURL(t, f, "creds"); u != repo {
			t.Errorf("CloneURL = %q, want %q", u, repo)
		}
		if _, sealed := rawRepository(t, f, "creds"); sealed != "" {
			t.Errorf("a URL without a credential left %q sealed", sealed)
		}
		if strings.Contains(audited.String(), password) || strings.Contains(audited.String(), "N3wPassw0rd") {
			t.Errorf("the audit trail holds the password: %s", audited.String())
		}
	})
}

// A URL stored in the clear by an older version is shown hidden at once,
// and sealed by SealRepositories.
func TestSealRepositories(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, d *db.DB) {
		f := newFixture(t, d)
		f.create(t, stack.Stack{ID: "old"})
		f.create(t, stack.Stack{ID: "ssh", Repository: "ssh://git@github.com/acme/infra.git"})
		if _, err := d.Exec(f.ctx, `UPDATE stacks SET repository = $1 WHERE id = 'old'`, credURL); err != nil {
			t.Fatal(err)
		}
		if got, _ := f.stacks.Get(f.ctx, "old"); got.Repository != shownURL {
			t.Errorf("Get repository = %q, want %q", got.Repository, shownURL)
		}
		if u := cloneURL(t, f, "old"); u != credURL {
			t.Errorf("CloneURL = %q, want %q", u, credURL)
		}
		n, err := f.stacks.SealRepositories(f.ctx)
		if err != nil || n != 1 {
			t.Fatalf("SealRepositories = %d, %v; want 1", n, err)
		}
		if repo, sealed := rawRepository(t, f, "old"); repo != shownURL || sealed == "" {
			t.Errorf("stored repository = %q, sealed %q; want %q and the URL sealed", repo, sealed, shownURL)
		}
		if u := cloneURL(t, f, "old"); u != credURL {
			t.Errorf("after sealing, CloneURL = %q, want %q", u, credURL)
		}
		if n, err := f.stacks.SealRepositories(f.ctx); err != nil || n != 0 {
			t.Errorf("SealRepositories again = %d, %v; want 0", n, err)
		}
	})
}

// A relative path would be resolved against a worker's working directory:
// refused when the repository is set.
func TestRepositoryRelativePathRefused(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, d *db.DB) {
		f := newFixture(t, d)
		for _, repo := range []string{"repos/fp", "./fp", "../x/fp", "fp", "~/repos/fp", "./a:b"} {
			_, err := f.stacks.Create(f.ctx, stack.Stack{ID: "rel", Repository: repo})
			wantKind(t, err, errs.Invalid)
			if err != nil && !strings.Contains(err.Error(), "absolute path") {
				t.Errorf("Create(%q) = %v, want a message asking for an absolute path", repo, err)
			}
		}
		// file:// and no third slash: git takes "repos" for a host.
		for _, repo := range []string{"file://repos/fp", "FILE://repos/fp", "file://..", "file://example.com/srv/fp.git"} {
			_, err := f.stacks.Create(f.ctx, stack.Stack{ID: "rel", Repository: repo})
			wantKind(t, err, errs.Invalid)
			if err != nil && !strings.Contains(err.Error(), "file:///absolute/path") {
				t.Errorf("Create(%q) = %v, want a message asking for file:///absolute/path", repo, err)
			}
		}
		for i, repo := range []string{"/srv/git/fp.git", "file:///srv/git/fp.git", "file://localhost/srv/git/fp.git", "git@github.com:acme/fp.git", "github.com:acme/fp.git", repo} {
			f.create(t, stack.Stack{ID: "abs-" + string(rune('a'+i)), Repository: repo})
		}
		_, err := f.stacks.Update(f.ctx, "abs-a", func(s *stack.Stack) error { s.Repository = "repos/fp"; return nil })
		wantKind(t, err, errs.Invalid)
	})
}
