// Package redact hides the credentials that URLs given on the command line
// may carry (tool mirrors, the server's address) before they are logged or
// shown in a run's log. Database URLs have their own rules: see
// db.RedactURL.
package redact

import (
	"net/url"
	"strings"
)

// Mask replaces what is hidden.
const Mask = "redacted"

// URL returns raw fit for a log line: its user information, which may be a
// user and password or a token alone (https://TOKEN@host), is replaced by
// Mask, and so is the value of every query parameter (signed URLs carry
// their signature there). A string that does not parse, or whose user
// information is not where a URL parser finds it (a password holding a '/'),
// is replaced whole: its parts cannot be told apart.
func URL(raw string) string {
	if raw == "" {
		return ""
	}
	u, err := url.Parse(raw)
	if err != nil || misread(raw, u) {
		return Mask
	}
	if u.User != nil {
		u.User = url.User(Mask)
	}
	if u.RawQuery != "" {
		q := u.Query()
		for k := range q {
			q[k] = []string{Mask}
		}
		u.RawQuery = q.Encode()
	}
	return u.String()
}

// misread reports whether raw has an '@' before its query but u no user
// information: a password holding a '/' ("u:12/ab@host") parses as a port
// and a path, and would be printed as such.
func misread(raw string, u *url.URL) bool {
	before, _, _ := strings.Cut(raw, "?")
	return u.User == nil && strings.Contains(before, "@")
}
