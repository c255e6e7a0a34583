package engine

import "encoding/json"

// Spacelift's plan policy documentation says: "Sensitive properties in
// `before` and `after` objects will be sanitized to protect secret values",
// by hashing them with sha256 and keeping the end of the hash, and offers
// `sanitized(x)` so policies can compare such a property with a constant.
//
// Gantry does the same, in two pieces:
//
//   - SanitizeStrings replaces every string value of a value, however deep,
//     with Sanitized(value); object keys, numbers, booleans and nulls stay.
//   - SanitizePlan applies it, in each input.terraform.resource_changes[*]
//     .change, to the parts of `before` and `after` that OpenTofu marks
//     sensitive in `before_sensitive` and `after_sensitive` (true for a
//     whole attribute, or an object/array mirroring the attribute with true
//     where a nested value is sensitive). Everything else in the plan input
//     is left readable, so policies can check tags, instance types, ACLs.

// SanitizeStrings returns a deep copy of v (JSON-compatible Go values) in
// which every string value, not object keys, is replaced by Sanitized of it.
func SanitizeStrings(v any) any {
	switch x := v.(type) {
	case string:
		return Sanitized(x)
	case json.Number, bool, nil, float64, float32, int, int64, int32, uint, uint64, uint32:
		return x
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			out[k] = SanitizeStrings(e)
		}
		return out
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = SanitizeStrings(e)
		}
		return out
	case []string:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = Sanitized(e)
		}
		return out
	case map[string]string:
		out := make(map[string]any, len(x))
		for k, e := range x {
			out[k] = Sanitized(e)
		}
		return out
	}
	return v
}

// SanitizePlan returns a copy of a PLAN policy input (as decoded from JSON)
// whose resource changes have their sensitive before/after values
// sanitized (see above). Parts it does not understand are kept as they are.
func SanitizePlan(input map[string]any) map[string]any {
	tf, ok := input["terraform"].(map[string]any)
	if !ok {
		return input
	}
	changes, ok := tf["resource_changes"].([]any)
	if !ok {
		return input
	}
	newChanges := make([]any, len(changes))
	for i, c := range changes {
		newChanges[i] = sanitizeChange(c)
	}
	newTF := shallowCopy(tf)
	newTF["resource_changes"] = newChanges
	out := shallowCopy(input)
	out["terraform"] = newTF
	return out
}

func sanitizeChange(c any) any {
	rc, ok := c.(map[string]any)
	if !ok {
		return c
	}
	change, ok := rc["change"].(map[string]any)
	if !ok {
		return c
	}
	newChange := shallowCopy(change)
	for _, side := range []string{"before", "after"} {
		if v, ok := change[side]; ok {
			newChange[side] = sanitizeMarked(v, change[side+"_sensitive"])
		}
	}
	out := shallowCopy(rc)
	out["change"] = newChange
	return out
}

// sanitizeMarked sanitizes the parts of v that mark flags as sensitive.
func sanitizeMarked(v, mark any) any {
	switch m := mark.(type) {
	case bool:
		if m {
			return SanitizeStrings(v)
		}
		return v
	case map[string]any:
		obj, ok := v.(map[string]any)
		if !ok {
			return v
		}
		out := shallowCopy(obj)
		for k, sub := range m {
			if e, ok := obj[k]; ok {
				out[k] = sanitizeMarked(e, sub)
			}
		}
		return out
	case []any:
		arr, ok := v.([]any)
		if !ok {
			return v
		}
		out := make([]any, len(arr))
		copy(out, arr)
		for i := range min(len(arr), len(m)) {
			out[i] = sanitizeMarked(arr[i], m[i])
		}
		return out
	}
	return v
}

func shallowCopy(m map[string]any) map[string]any {
	out := make(map[string]any, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}
