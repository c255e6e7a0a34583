package redact

import (
	"net/url"
	"regexp"
	"strings"
)

// Hidden replaces the credential of a repository URL where it is shown
// (the same text as secrets.Mask).
const Hidden = "*****"

// Repository returns a git repository URL as it may be shown, and the
// secret parts it hides (to mask in a run's log). Over HTTP(S) and any
// other scheme but SSH, the whole user information is secret: a token is
// often given as the user alone (https://TOKEN@github.com/...) or before a
// placeholder password (https://TOKEN:x-oauth-basic@...), so
// https://alice:pw@host/x is shown as https://*****@host/x. Over SSH only a
// password is (ssh://git:*****@host/x); ssh://git@host/x and scp-like
// addresses (git@host:x) and local paths carry none.
//
// The user information ends at the last '@' before the first '/' after
// "://", as git reads it; a URL with an '@' only after that (a password
// holding an unescaped '/') is hidden up to that '@', as its parts cannot
// be told apart.
func Repository(raw string) (shown string, secret []string) {
	scheme, rest, ok := strings.Cut(raw, "://")
	if !ok || scheme == "" || strings.ContainsAny(scheme, "/@:") {
		return raw, nil
	}
	authority, _, _ := strings.Cut(rest, "/")
	at := strings.LastIndex(authority, "@")
	ssh := isSSH(scheme)
	if at < 0 {
		if ssh {
			return raw, nil
		}
		if at = strings.LastIndex(rest, "@"); at < 0 {
			return raw, nil
		}
	}
	userinfo, host := rest[:at], rest[at+1:]
	user, pass, hasPass := strings.Cut(userinfo, ":")
	if ssh {
		if !hasPass {
			return raw, nil
		}
		return scheme + "://" + user + ":" + Hidden + "@" + host, forms(pass)
	}
	secret = forms(userinfo)
	if hasPass {
		secret = append(secret, forms(user)...)
		secret = append(secret, forms(pass)...)
	}
	return scheme + "://" + Hidden + "@" + host, secret
}

// HasHidden reports whether a repository URL carries Hidden where its
// credential would be: it was copied from where Gantry shows it.
func HasHidden(raw string) bool {
	_, secret := Repository(raw)
	for _, s := range secret {
		if strings.Contains(s, Hidden) {
			return true
		}
	}
	return false
}

func isSSH(scheme string) bool {
	switch strings.ToLower(scheme) {
	case "ssh", "git+ssh", "ssh+git":
		return true
	}
	return false
}

// forms are a secret as written and percent-decoded (git prints either).
func forms(s string) []string {
	if s == "" {
		return nil
	}
	out := []string{s}
	if d, err := url.PathUnescape(s); err == nil && d != s {
		out = append(out, d)
	}
	return out
}

var urlInText = regexp.MustCompile(`[A-Za-z][A-Za-z0-9+.-]*://[^\s'"<>` + "`" + `]+`)

// RepositoriesIn hides the credentials of every URL in a text (an error
// message of git's) as Repository shows them.
func RepositoriesIn(text string) string {
	if !strings.Contains(text, "@") {
		return text
	}
	return urlInText.ReplaceAllStringFunc(text, func(u string) string {
		shown, _ := Repository(u)
		return shown
	})
}
