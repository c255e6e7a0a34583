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
//     where a nested value is sensitive); likewise to output_changes, to the
//     resource values of planned_values and prior_state (by their
//     sensitive_values), to sensitive outputs, and to the values of input
//     variables declared sensitive. Everything else in the plan input is
//     left readable, so policies can check tags, instance types, ACLs.

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
	// The other places a plan carries values: outputs, the planned and
	// prior states, and the input variables.
	if oc, ok := tf["output_changes"].(map[string]any); ok {
		out := make(map[string]any, len(oc))
		for k, c := range oc {
			out[k] = sanitizeOutputChange(c)
		}
		newTF["output_changes"] = out
	}
	for _, key := range []string{"planned_values", "prior_state"} {
		if v, ok := tf[key].(map[string]any); ok {
			newTF[key] = sanitizeStateValues(v)
		}
	}
	if vars, ok := tf["variables"].(map[string]any); ok {
		newTF["variables"] = sanitizeVariables(vars, sensitiveVariables(tf))
	}
	if cfg, ok := tf["configuration"].(map[string]any); ok {
		if root, ok := cfg["root_module"].(map[string]any); ok {
			nc := shallowCopy(cfg)
			nc["root_module"] = sanitizeConfigModule(root)
			newTF["configuration"] = nc
		}
	}
	out := shallowCopy(input)
	out["terraform"] = newTF
	return out
}

// sanitizeOutputChange sanitizes an output change ({before, after,
// before_sensitive, after_sensitive}, where the marks are booleans).
func sanitizeOutputChange(c any) any {
	change, ok := c.(map[string]any)
	if !ok {
		return c
	}
	out := shallowCopy(change)
	for _, side := range []string{"before", "after"} {
		if v, ok := change[side]; ok {
			out[side] = sanitizeMarked(v, change[side+"_sensitive"])
		}
	}
	return out
}

// sanitizeStateValues sanitizes planned_values or prior_state: each
// resource's values by its sensitive_values marks, in the root module and
// child modules, and the outputs marked sensitive.
func sanitizeStateValues(state map[string]any) map[string]any {
	out := shallowCopy(state)
	if vals, ok := state["values"].(map[string]any); ok {
		out["values"] = sanitizeStateValues(vals) // prior_state nests under values
	}
	if root, ok := state["root_module"].(map[string]any); ok {
		out["root_module"] = sanitizeModule(root)
	}
	if outputs, ok := state["outputs"].(map[string]any); ok {
		no := make(map[string]any, len(outputs))
		for k, o := range outputs {
			om, ok := o.(map[string]any)
			if ok && om["sensitive"] == true {
				om = shallowCopy(om)
				om["value"] = SanitizeStrings(om["value"])
				no[k] = om
				continue
			}
			no[k] = o
		}
		out["outputs"] = no
	}
	return out
}

func sanitizeModule(mod map[string]any) map[string]any {
	out := shallowCopy(mod)
	if rs, ok := mod["resources"].([]any); ok {
		nr := make([]any, len(rs))
		for i, r := range rs {
			rm, ok := r.(map[string]any)
			if !ok {
				nr[i] = r
				continue
			}
			rm = shallowCopy(rm)
			if v, ok := rm["values"]; ok {
				rm["values"] = sanitizeMarked(v, rm["sensitive_values"])
			}
			nr[i] = rm
		}
		out["resources"] = nr
	}
	if cs, ok := mod["child_modules"].([]any); ok {
		nc := make([]any, len(cs))
		for i, c := range cs {
			if cm, ok := c.(map[string]any); ok {
				nc[i] = sanitizeModule(cm)
			} else {
				nc[i] = c
			}
		}
		out["child_modules"] = nc
	}
	return out
}

// sensitiveVariables lists the root module's variables declared sensitive.
func sensitiveVariables(tf map[string]any) map[string]bool {
	out := map[string]bool{}
	cfg, _ := tf["configuration"].(map[string]any)
	root, _ := cfg["root_module"].(map[string]any)
	vars, _ := root["variables"].(map[string]any)
	for name, v := range vars {
		if vm, ok := v.(map[string]any); ok && vm["sensitive"] == true {
			out[name] = true
		}
	}
	return out
}

// sanitizeVariables sanitizes the values of the sensitive input variables.
func sanitizeVariables(vars map[string]any, sensitive map[string]bool) map[string]any {
	out := make(map[string]any, len(vars))
	for name, v := range vars {
		vm, ok := v.(map[string]any)
		if ok && sensitive[name] {
			vm = shallowCopy(vm)
			vm["value"] = SanitizeStrings(vm["value"])
			out[name] = vm
			continue
		}
		out[name] = v
	}
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

// sanitizeConfigModule sanitizes the defaults of sensitive variables in a
// configuration module and the modules it calls.
func sanitizeConfigModule(mod map[string]any) map[string]any {
	out := shallowCopy(mod)
	if vars, ok := mod["variables"].(map[string]any); ok {
		nv := make(map[string]any, len(vars))
		for name, v := range vars {
			vm, ok := v.(map[string]any)
			if ok && vm["sensitive"] == true {
				if _, has := vm["default"]; has {
					vm = shallowCopy(vm)
					vm["default"] = SanitizeStrings(vm["default"])
				}
			}
			if ok {
				nv[name] = vm
			} else {
				nv[name] = v
			}
		}
		out["variables"] = nv
	}
	if calls, ok := mod["module_calls"].(map[string]any); ok {
		nc := make(map[string]any, len(calls))
		for name, c := range calls {
			cm, ok := c.(map[string]any)
			if !ok {
				nc[name] = c
				continue
			}
			if child, ok := cm["module"].(map[string]any); ok {
				cm = shallowCopy(cm)
				cm["module"] = sanitizeConfigModule(child)
			}
			nc[name] = cm
		}
		out["module_calls"] = nc
	}
	return out
}
