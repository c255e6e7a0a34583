package secrets

import (
	"encoding/base64"
	"encoding/json"
	"sort"
	"strings"
	"sync"
)

// Mask is the text that replaces a secret value.
const Mask = "*****"

// Masker replaces secret values, and their common encodings (JSON-escaped,
// base64), by Mask. It is safe for concurrent use; Add masks more values
// from then on.
type Masker struct {
	mu     sync.RWMutex
	values []string
	r      *strings.Replacer
	maxLen int
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
		forms = append(forms, v)
		if j, err := json.Marshal(v); err == nil {
			forms = append(forms, string(j[1:len(j)-1]))
		}
		forms = append(forms, base64.StdEncoding.EncodeToString([]byte(v)))
	}
	// Longest first so that a value containing another is masked whole.
	sort.Slice(forms, func(i, j int) bool { return len(forms[i]) > len(forms[j]) })
	var pairs []string
	seen := map[string]bool{}
	m.maxLen = 0
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
	m.r = nil
	if len(pairs) > 0 {
		m.r = strings.NewReplacer(pairs...)
	}
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
