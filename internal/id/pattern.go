package id

import "regexp"

// Pattern is a regular expression whose length bound is checked apart:
// Go compiles a bounded repetition such as x{0,254} into 254 copies of x,
// hundreds of KiB held for the life of the process (the server's idle
// memory), so patterns say x* and Pattern checks the length in bytes.
type Pattern struct {
	re       *regexp.Regexp
	min, max int
}

// MustPattern compiles expr (anchored by the caller) with a length of min
// to max bytes; it panics on a bad expression, like regexp.MustCompile.
func MustPattern(expr string, min, max int) Pattern {
	return Pattern{re: regexp.MustCompile(expr), min: min, max: max}
}

// MatchString reports whether s has an allowed length and matches.
func (p Pattern) MatchString(s string) bool {
	return len(s) >= p.min && len(s) <= p.max && p.re.MatchString(s)
}
