package secrets

import (
	"encoding/base64"
	"encoding/json"
	"sort"
	"strings"
)

// Mask is the text that replaces a secret value.
const Mask = "*****"

// Masker replaces secret values, and their common encodings (JSON-escaped,
// base64), by Mask.
type Masker struct {
	r      *strings.Replacer
	maxLen int
}

// NewMasker returns a masker for the given values; values shorter than 4
// characters are not masked (they would mask ordinary text).
func NewMasker(values []string) *Masker {
	var forms []string
	for _, v := range values {
		if len(v) < 4 {
			continue
		}
		forms = append(forms, v)
		if j, err := json.Marshal(v); err == nil {
			forms = append(forms, string(j[1:len(j)-1]))
		}
		forms = append(forms, base64.StdEncoding.EncodeToString([]byte(v)))
	}
	// Longest first so that a value containing another is masked whole.
	sort.Slice(forms, func(i, j int) bool { return len(forms[i]) > len(forms[j]) })
	m := &Masker{}
	var pairs []string
	seen := map[string]bool{}
	for _, f := range forms {
		if seen[f] {
			continue
		}
		seen[f] = true
		pairs = append(pairs, f, Mask)
		if len(f) > m.maxLen {
			m.maxLen = len(f)
		}
	}
	if len(pairs) > 0 {
		m.r = strings.NewReplacer(pairs...)
	}
	return m
}

// String masks s.
func (m *Masker) String(s string) string {
	if m == nil || m.r == nil {
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
	return m.maxLen
}
