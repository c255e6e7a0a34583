package db

import (
	"errors"
	"net/url"
	"regexp"
	"strings"
)

// redactMask replaces the passwords [RedactURL] hides.
const redactMask = "redacted"

// errAmbiguousURL is returned by [Open] for a PostgreSQL URL whose user
// information pgx and Go's net/url would split differently. The message
// does not echo the URL, which holds a password.
var errAmbiguousURL = errors.New("db: the database URL has an '@', '/', '?' or '#' that is not percent-encoded in its user name or password " +
	"(PostgreSQL ends them at the first '@', other parsers at the last): write them as %40, %2F, %3F, %23")

// RedactURL returns a database URL (postgres://user:password@host/db?...)
// fit for a log line: the user name is kept, the password is replaced, and
// so are the values of the password and sslpassword query parameters. In a
// key-value connection string (host=h password=p) the password values are
// replaced. A URL that does not parse, or whose user information is
// ambiguous (an unescaped '@' or '/' in the password, see [Open]), is
// replaced whole: which part is the password cannot be told.
func RedactURL(raw string) string {
	if raw == "" {
		return ""
	}
	if !strings.Contains(raw, "://") {
		return keyValuePassword.ReplaceAllString(raw, "${1}="+redactMask)
	}
	u, err := url.Parse(raw)
	if err != nil || ambiguousUserinfo(raw) {
		return redactMask
	}
	if _, ok := u.User.Password(); ok {
		u.User = url.UserPassword(u.User.Username(), redactMask)
	}
	if u.RawQuery != "" {
		q := u.Query()
		for k := range q {
			if lk := strings.ToLower(k); lk == "password" || lk == "sslpassword" {
				q[k] = []string{redactMask}
			}
		}
		u.RawQuery = q.Encode()
	}
	return u.String()
}

// keyValuePassword matches a password in a key-value connection string,
// quoted ('...' with \' and \\ escapes) or not.
var keyValuePassword = regexp.MustCompile(`(?i)\b((?:ssl)?password)\s*=\s*(?:'(?:[^'\\]|\\.)*'|\S+)`)

// ambiguousUserinfo reports whether pgx (like libpq) and Go's net/url
// would read different user information from the URL raw. pgx ends it at
// the first '@' before the first '/', net/url at the last '@' before the
// first '/', '?' or '#'; neither sees an '@' after a '/'. They agree only
// when the part before the first '/' has at most one '@', ahead of any '?'
// or '#', and no '@' follows before the query.
func ambiguousUserinfo(raw string) bool {
	_, rest, _ := strings.Cut(raw, "://")
	authority, path, _ := strings.Cut(rest, "/")
	if at := strings.IndexByte(authority, '@'); at >= 0 {
		if strings.Count(authority, "@") > 1 || strings.ContainsAny(authority[:at], "?#") {
			return true
		}
	}
	path, _, _ = strings.Cut(path, "?")
	return strings.Contains(path, "@")
}
