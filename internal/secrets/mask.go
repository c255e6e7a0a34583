package secrets

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"sort"
	"strings"
	"sync"
	"unicode/utf16"
)

// Mask is the text that replaces a secret value.
const Mask = "*****"

// Masker replaces secret values, and their common encodings (JSON-escaped
// as the usual encoders write them, base64), by Mask; a value's trailing
// line break is left in place. It is safe for concurrent use; Add masks more values
// from then on.
type Masker struct {
	mu     sync.RWMutex
	values []string
	r      *strings.Replacer
	maxLen int
	forms  [][]byte  // what r replaces, longest first
	first  [256]bool // the bytes a form starts with
}

// NewMasker returns a masker for the given values; values shorter than 4
// characters are not masked (they would mask ordinary text).
func NewMasker(values []string) *Masker {
	m := &Masker{}
	m.Add(values...)
	return m
}

// Add masks values too (a token issued while a job runs).
func (m *Masker) Add(values ...string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.values = append(m.values, values...)
	var forms []string
	for _, v := range m.values {
		if len(v) < 4 {
			continue
		}
		// A value's trailing line break (a file's last line, a value
		// pasted with its newline) is not masked: printing the value must
		// not join its line and the next.
		if t := strings.TrimRight(v, "\r\n"); len(t) >= 4 {
			forms = append(forms, t, base64.StdEncoding.EncodeToString([]byte(t)))
			forms = append(forms, jsonForms(t)...)
		}
		forms = append(forms, base64.StdEncoding.EncodeToString([]byte(v)))
	}
	// Longest first so that a value containing another is masked whole.
	sort.Slice(forms, func(i, j int) bool { return len(forms[i]) > len(forms[j]) })
	var pairs []string
	seen := map[string]bool{}
	m.maxLen = 0
	m.forms = m.forms[:0]
	m.first = [256]bool{}
	for _, f := range forms {
		if seen[f] {
			continue
		}
		seen[f] = true
		pairs = append(pairs, f, Mask)
		m.forms = append(m.forms, []byte(f))
		m.first[f[0]] = true
		if len(f) > m.maxLen {
			m.maxLen = len(f)
		}
	}
	m.r = nil
	if len(pairs) > 0 {
		m.r = strings.NewReplacer(pairs...)
	}
}

// jsonForms are v as it appears inside a JSON string written by the common
// encoders: Go's (<, > and & as \u003c...), JavaScript's and Python's with
// ensure_ascii=False (only quotes, backslashes and control characters
// escaped), and Python's default ensure_ascii (every non-ASCII character
// as \uxxxx, astral ones as surrogate pairs) in lowercase and uppercase
// hexadecimal. Forms equal to v or to each other are merged by the caller.
func jsonForms(v string) []string {
	var out []string
	if j, err := json.Marshal(v); err == nil {
		out = append(out, string(j[1:len(j)-1]))
	}
	out = append(out, escapeJSON(v, false, "0123456789abcdef"))
	if hasNonASCII(v) {
		out = append(out, escapeJSON(v, true, "0123456789abcdef"), escapeJSON(v, true, "0123456789ABCDEF"))
	}
	return out
}

// hasNonASCII tells whether s has a byte that ensure_ascii escapes as
// \uxxxx (DEL or beyond ASCII).
func hasNonASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x7f {
			return true
		}
	}
	return false
}

// escapeJSON escapes s for the inside of a JSON string: quote, backslash
// and control characters always (\b \f \n \r \t short), and with
// ascii every rune outside printable ASCII as \u escapes in hex's digits.
func escapeJSON(s string, ascii bool, hex string) string {
	var b strings.Builder
	u := func(r rune) {
		b.WriteString(`\u`)
		for shift := 12; shift >= 0; shift -= 4 {
			b.WriteByte(hex[(r>>shift)&0xf])
		}
	}
	for _, r := range s {
		switch {
		case r == '"':
			b.WriteString(`\"`)
		case r == '\\':
			b.WriteString(`\\`)
		case r == '\b':
			b.WriteString(`\b`)
		case r == '\f':
			b.WriteString(`\f`)
		case r == '\n':
			b.WriteString(`\n`)
		case r == '\r':
			b.WriteString(`\r`)
		case r == '\t':
			b.WriteString(`\t`)
		case r < 0x20:
			u(r)
		case ascii && r > 0xffff:
			r1, r2 := utf16.EncodeRune(r)
			u(r1)
			u(r2)
		case ascii && r >= 0x7f:
			u(r)
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}

// String masks s.
func (m *Masker) String(s string) string {
	if m == nil {
		return s
	}
	m.mu.RLock()
	defer m.mu.RUnlock()
	if m.r == nil {
		return s
	}
	return m.r.Replace(s)
}

// MaxLen is the length of the longest masked form: a stream must hold back
// that many bytes minus one so a secret split across writes is still masked.
func (m *Masker) MaxLen() int {
	if m == nil {
		return 0
	}
	m.mu.RLock()
	defer m.mu.RUnlock()
	return m.maxLen
}

// SafeCut returns the largest n <= cut such that no masked form in b
// starts before n and ends after it: b[:n] and b[n:] masked apart are
// masked as b would be. A stream cutting a very long line in pieces cuts
// there (and holds back MaxLen()-1 bytes for the writes still to come).
//
// It finds the forms where the masking itself does (from b's start,
// leftmost, the longest form first, no overlap), not every occurrence: a
// value that overlaps itself ("abab" printed over and over) occurs at
// every other byte, yet is masked only where each mask ends. So n is
// never more than MaxLen()-1 bytes before cut.
func (m *Masker) SafeCut(b []byte, cut int) int {
	if m == nil {
		return cut
	}
	m.mu.RLock()
	defer m.mu.RUnlock()
	cut = min(cut, len(b))
	for i := 0; i < cut; {
		n := m.formAt(b[i:])
		if n == 0 {
			i++
			continue
		}
		if i+n > cut {
			return i
		}
		i += n
	}
	return cut
}

// formAt returns the length of the form the masking replaces at the start
// of b (the longest that matches, as the replacer prefers), or 0.
func (m *Masker) formAt(b []byte) int {
	if len(b) == 0 || !m.first[b[0]] {
		return 0
	}
	for _, f := range m.forms { // longest first
		if bytes.HasPrefix(b, f) {
			return len(f)
		}
	}
	return 0
}
