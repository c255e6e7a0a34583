// Package truncate shortens text that is stored or sent as JSON without
// cutting a character in two: half a UTF-8 sequence is refused by
// PostgreSQL ("invalid byte sequence for encoding UTF8") and becomes
// U+FFFD in JSON.
package truncate

import "unicode/utf8"

// String returns s cut to at most n bytes, before the character that would
// straddle byte n. Bytes that are not UTF-8 are cut like single bytes.
func String(s string, n int) string {
	if len(s) <= n {
		return s
	}
	n = max(n, 0)
	// The character holding byte n starts at most utf8.UTFMax-1 bytes
	// before it: cut before it when it is one (and not stray bytes).
	for i := n; i >= 0 && i > n-utf8.UTFMax; i-- {
		if utf8.RuneStart(s[i]) {
			if r, size := utf8.DecodeRuneInString(s[i:]); r != utf8.RuneError || size > 1 {
				if i+size > n {
					return s[:i]
				}
			}
			break
		}
	}
	return s[:n]
}
