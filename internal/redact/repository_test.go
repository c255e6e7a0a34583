package redact

import (
	"slices"
	"testing"
)

func TestRepository(t *testing.T) {
	tests := []struct {
		in, shown string
		secret    []string
	}{
		{"https://github.com/acme/infra.git", "https://github.com/acme/infra.git", nil},
		{"/srv/git/infra.git", "/srv/git/infra.git", nil},
		{"git@github.com:acme/infra.git", "git@github.com:acme/infra.git", nil},
		{"file:///srv/git/infra.git", "file:///srv/git/infra.git", nil},
		{"http://alice:S3cretPassw0rd@127.0.0.1:19202/infra.git", "http://*****@127.0.0.1:19202/infra.git",
			[]string{"alice:S3cretPassw0rd", "alice", "S3cretPassw0rd"}},
		{"https://ghp_TOKEN@github.com/acme/infra", "https://*****@github.com/acme/infra", []string{"ghp_TOKEN"}},
		{"https://ghp_TOKEN:x-oauth-basic@github.com/a/b", "https://*****@github.com/a/b",
			[]string{"ghp_TOKEN:x-oauth-basic", "ghp_TOKEN", "x-oauth-basic"}},
		{"https://u:p%40ss@host/x", "https://*****@host/x", []string{"u:p%40ss", "u:p@ss", "u", "p%40ss", "p@ss"}},
		{"https://u:p@ss@host/x", "https://*****@host/x", []string{"u:p@ss", "u", "p@ss"}},
		{"http://u:12/SECRET@host/x", "http://*****@host/x", []string{"u:12/SECRET", "u", "12/SECRET"}},
		{"ssh://git@github.com/acme/infra", "ssh://git@github.com/acme/infra", nil},
		{"ssh://git:pw12@github.com/acme/infra", "ssh://git:*****@github.com/acme/infra", []string{"pw12"}},
	}
	for _, tt := range tests {
		shown, secret := Repository(tt.in)
		if shown != tt.shown || !slices.Equal(secret, tt.secret) {
			t.Errorf("Repository(%q) = %q, %q; want %q, %q", tt.in, shown, secret, tt.shown, tt.secret)
		}
		if HasHidden(tt.in) {
			t.Errorf("HasHidden(%q) = true", tt.in)
		}
		if tt.secret != nil && !HasHidden(tt.shown) {
			t.Errorf("HasHidden(%q) = false", tt.shown)
		}
	}
}

func TestRepositoriesIn(t *testing.T) {
	in := "fatal: unable to access 'https://alice:S3cret@host/x.git/': Failed; see http://host/y and 'ssh://git:pw12@h/z'"
	want := "fatal: unable to access 'https://*****@host/x.git/': Failed; see http://host/y and 'ssh://git:*****@h/z'"
	if got := RepositoriesIn(in); got != want {
		t.Errorf("RepositoriesIn = %q, want %q", got, want)
	}
}
