package cloud

import (
	"encoding/json"
	"strconv"
	"strings"
)

// Helpers that read decoded plan JSON (map[string]any, []any, string,
// float64/json.Number, bool, nil) without panicking on unexpected shapes.

func obj(v any) map[string]any {
	m, _ := v.(map[string]any)
	return m
}

func list(v any) []any {
	l, _ := v.([]any)
	return l
}

// get walks keys through nested objects; a nested block (a list of objects
// in plan JSON) is entered at its first element.
func get(v any, keys ...string) any {
	for _, k := range keys {
		if l, ok := v.([]any); ok {
			if len(l) == 0 {
				return nil
			}
			v = l[0]
		}
		m, ok := v.(map[string]any)
		if !ok {
			return nil
		}
		v = m[k]
	}
	return v
}

func str(v any) string {
	s, _ := v.(string)
	return s
}

// boolp returns a bool, or nil when the value is unknown or absent.
func boolp(v any) any {
	if b, ok := v.(bool); ok {
		return b
	}
	return nil
}

func num(v any) (float64, bool) {
	switch n := v.(type) {
	case float64:
		return n, true
	case int:
		return float64(n), true
	case int64:
		return float64(n), true
	case json.Number:
		f, err := n.Float64()
		return f, err == nil
	case string:
		f, err := strconv.ParseFloat(n, 64)
		return f, err == nil
	}
	return 0, false
}

// strs returns the strings of a list, or a one-element list for a string.
func strs(v any) []string {
	if s, ok := v.(string); ok {
		if s == "" {
			return nil
		}
		return []string{s}
	}
	var out []string
	for _, e := range list(v) {
		if s, ok := e.(string); ok && s != "" {
			out = append(out, s)
		}
	}
	return out
}

// anyTrue is true if some value is the boolean true.
func anyTrue(vs ...any) bool {
	for _, v := range vs {
		if b, ok := v.(bool); ok && b {
			return true
		}
	}
	return false
}

// firstKnown returns the first non-nil value.
func firstKnown(vs ...any) any {
	for _, v := range vs {
		if v != nil {
			return v
		}
	}
	return nil
}

func lower(s string) string { return strings.ToLower(strings.TrimSpace(s)) }

// resolve overlays after_unknown on after: every value marked unknown
// becomes nil, so that readers treat it as "not known until apply".
func resolve(v, unknown any) any {
	if u, ok := unknown.(bool); ok && u {
		return nil
	}
	switch val := v.(type) {
	case map[string]any:
		um := obj(unknown)
		out := make(map[string]any, len(val))
		for k, e := range val {
			out[k] = resolve(e, um[k])
		}
		for k, u := range um {
			if _, seen := out[k]; !seen && u == true {
				out[k] = nil
			}
		}
		return out
	case []any:
		ul := list(unknown)
		out := make([]any, len(val))
		for i, e := range val {
			var u any
			if i < len(ul) {
				u = ul[i]
			}
			out[i] = resolve(e, u)
		}
		return out
	}
	return v
}

// isUnknown reports whether after_unknown marks the attribute as unknown.
func isUnknown(unknown any, keys ...string) bool {
	v := get(unknown, keys...)
	b, _ := v.(bool)
	return b
}
