package tofu

import (
	"bytes"
	"encoding/json"
	"fmt"
)

// Sensitive replaces a value OpenTofu marks sensitive in a redacted plan,
// as OpenTofu's own plan output shows it.
const Sensitive = "(sensitive value)"

// RedactPlan returns a plan's JSON (`show -json`) as a reader who may not
// download the stack's state sees it: what the run's log shows. Values
// OpenTofu marks sensitive (resource attributes by their *_sensitive
// marks, outputs, variables declared sensitive) become [Sensitive], and
// the prior state, which holds every attribute of every resource, is
// dropped. Values OpenTofu does not mark stay, as in the log.
func RedactPlan(data []byte) ([]byte, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber() // numbers stay as written
	var plan map[string]any
	if err := dec.Decode(&plan); err != nil {
		return nil, fmt.Errorf("reading the plan JSON: %w", err)
	}
	delete(plan, "prior_state")
	for _, key := range []string{"resource_changes", "resource_drift"} {
		for _, rc := range list(plan[key]) {
			redactChange(object(object(rc)["change"]))
		}
	}
	for _, oc := range object(plan["output_changes"]) {
		redactChange(object(oc))
	}
	redactValues(object(plan["planned_values"]))
	declared := object(object(object(plan["configuration"])["root_module"])["variables"])
	for name, v := range object(plan["variables"]) {
		if object(declared[name])["sensitive"] == true {
			if vv := object(v); vv != nil && vv["value"] != nil {
				vv["value"] = Sensitive
			}
		}
	}
	return json.Marshal(plan)
}

// redactChange redacts a change's before and after by their marks.
func redactChange(c map[string]any) {
	if c == nil {
		return
	}
	c["before"] = redactMarked(c["before"], c["before_sensitive"])
	c["after"] = redactMarked(c["after"], c["after_sensitive"])
}

// redactValues redacts a values representation (planned_values): its
// outputs, and its modules' resources by their sensitive_values.
func redactValues(v map[string]any) {
	if v == nil {
		return
	}
	for _, o := range object(v["outputs"]) {
		if out := object(o); out["sensitive"] == true && out["value"] != nil {
			out["value"] = Sensitive
		}
	}
	var module func(m map[string]any)
	module = func(m map[string]any) {
		for _, r := range list(m["resources"]) {
			res := object(r)
			if res != nil {
				res["values"] = redactMarked(res["values"], res["sensitive_values"])
			}
		}
		for _, child := range list(m["child_modules"]) {
			module(object(child))
		}
	}
	module(object(v["root_module"]))
}

// redactMarked replaces the parts of value that marks (true, or an object or
// array of marks shaped like value) flags sensitive. A null stays null.
func redactMarked(value, marks any) any {
	if value == nil {
		return nil
	}
	switch m := marks.(type) {
	case bool:
		if m {
			return Sensitive
		}
	case map[string]any:
		if obj, ok := value.(map[string]any); ok {
			for k, sub := range obj {
				obj[k] = redactMarked(sub, m[k])
			}
		}
	case []any:
		if arr, ok := value.([]any); ok {
			for i := range arr {
				if i < len(m) {
					arr[i] = redactMarked(arr[i], m[i])
				}
			}
		}
	}
	return value
}

func object(v any) map[string]any {
	m, _ := v.(map[string]any)
	return m
}

func list(v any) []any {
	l, _ := v.([]any)
	return l
}
