// Package labels validates label lists and stores them as JSON text in a way
// that both databases can filter on.
package labels

import (
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"unicode/utf8"

	"github.com/gantry-iac/gantry/internal/errs"
)

// Normalize validates labels, drops duplicates and sorts them.
func Normalize(in []string) ([]string, error) {
	seen := map[string]bool{}
	out := []string{}
	for _, l := range in {
		l = strings.TrimSpace(l)
		switch {
		case l == "":
			return nil, errs.E(errs.Invalid, "labels must not be empty")
		case len(l) > 255 || !utf8.ValidString(l):
			return nil, errs.E(errs.Invalid, "label %.40q is longer than 255 bytes or not UTF-8", l)
		case strings.ContainsAny(l, "\"\\\n\r\t\u2028\u2029"):
			return nil, errs.E(errs.Invalid, "label %q must not contain quotes, backslashes or control characters", l)
		}
		if !seen[l] {
			seen[l] = true
			out = append(out, l)
		}
	}
	if len(out) > 100 {
		return nil, errs.E(errs.Invalid, "at most 100 labels, got %d", len(out))
	}
	sort.Strings(out)
	return out, nil
}

// Encode returns the JSON text stored in a labels column.
func Encode(l []string) string {
	if l == nil {
		l = []string{}
	}
	// No HTML escaping: "r&d" must be stored as written so LIKE finds it.
	var b strings.Builder
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(l)
	return strings.TrimSuffix(b.String(), "\n")
}

// Decode reads a labels column.
func Decode(s string) ([]string, error) {
	var l []string
	if err := json.Unmarshal([]byte(s), &l); err != nil {
		return nil, fmt.Errorf("labels column: %w", err)
	}
	if l == nil {
		l = []string{}
	}
	return l, nil
}

// LikePattern returns a LIKE pattern (with ESCAPE '\') matching a labels
// column that contains label l.
func LikePattern(l string) string {
	r := strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`)
	return `%` + r.Replace(`"`+l+`"`) + `%`
}

// Has reports whether list holds l.
func Has(list []string, l string) bool {
	for _, x := range list {
		if x == l {
			return true
		}
	}
	return false
}

// AutoattachPrefix starts the labels by which a context, policy or
// integration attaches itself to every stack (of the spaces that see it)
// carrying the rest of the label ("autoattach:*": every stack).
const AutoattachPrefix = "autoattach:"

// AutoattachMatch returns the autoattach label among owner (the labels of
// a context, policy or integration) that matches a stack's labels ("" if
// none).
func AutoattachMatch(owner, stack []string) string {
	for _, l := range owner {
		want, ok := strings.CutPrefix(l, AutoattachPrefix)
		if ok && (want == "*" || Has(stack, want)) {
			return l
		}
	}
	return ""
}

// HasAutoattach reports whether l holds an autoattach label.
func HasAutoattach(l []string) bool {
	for _, x := range l {
		if strings.HasPrefix(x, AutoattachPrefix) {
			return true
		}
	}
	return false
}
