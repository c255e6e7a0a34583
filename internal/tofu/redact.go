package tofu

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
)

// Sensitive replaces a value OpenTofu marks sensitive in a redacted plan,
// as OpenTofu's own plan output shows it.
const Sensitive = "(sensitive value)"

// RedactPlan returns a plan's JSON (`show -json`) as a reader who may not
// download the stack's state sees it: what the run's log shows. Values
// OpenTofu marks sensitive (resource attributes by their *_sensitive
// marks, outputs, variables declared sensitive) become [Sensitive], and
// the prior state, which holds every attribute of every resource, is
// dropped; in the configuration, the literals of what is sensitive are
// redacted (see redactConfiguration). Values OpenTofu does not mark stay,
// as in the log.
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
	redactConfiguration(object(plan["configuration"]), resourceMarks(plan))
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

// redactConfiguration redacts the literals (constant_value) of the
// configuration that are sensitive, in the root module and every module
// under module_calls.*.module: the expressions of outputs declared
// sensitive, the defaults of variables declared sensitive, the arguments
// of a module call to variables the module declares sensitive, and
// resource arguments whose attributes OpenTofu marks sensitive in the
// resource's changes (marks: resourceMarks; the configuration itself
// carries no such mark, and a resource without a change has none).
// Provider configurations carry no marks at all and stay as written.
func redactConfiguration(cfg map[string]any, marks map[string][]any) {
	var module func(m map[string]any, path string)
	module = func(m map[string]any, path string) {
		if m == nil {
			return
		}
		for _, o := range object(m["outputs"]) {
			if out := object(o); out["sensitive"] == true {
				redactConstant(object(out["expression"]))
			}
		}
		for _, v := range object(m["variables"]) {
			if vv := object(v); vv["sensitive"] == true && vv["default"] != nil {
				vv["default"] = Sensitive
			}
		}
		for _, r := range list(m["resources"]) {
			res := object(r)
			if ms := marks[path+"|"+resourceKey(res)]; res != nil && len(ms) > 0 {
				redactExpressions(object(res["expressions"]), ms)
			}
		}
		for name, c := range object(m["module_calls"]) {
			call := object(c)
			child := object(call["module"])
			declared := object(child["variables"])
			for arg, ex := range object(call["expressions"]) {
				if object(declared[arg])["sensitive"] == true {
					redactConstant(object(ex))
				}
			}
			module(child, path+"module."+name+".")
		}
	}
	module(object(cfg["root_module"]), "")
}

// resourceMarks collects the sensitive marks (before_sensitive and
// after_sensitive) of every instance of every resource in the plan's
// changes and drift, by module path (without instance keys, as the
// configuration names it: "module.a.module.b.") and resource.
func resourceMarks(plan map[string]any) map[string][]any {
	out := map[string][]any{}
	for _, key := range []string{"resource_changes", "resource_drift"} {
		for _, rc := range list(plan[key]) {
			r := object(rc)
			if r == nil {
				continue
			}
			path := ""
			if ma, _ := r["module_address"].(string); ma != "" {
				path = withoutKeys(ma) + "."
			}
			k := path + "|" + resourceKey(r)
			c := object(r["change"])
			for _, m := range []any{c["before_sensitive"], c["after_sensitive"]} {
				if m != nil && m != false {
					out[k] = append(out[k], m)
				}
			}
		}
	}
	return out
}

// resourceKey names a resource within its module: mode, type and name.
func resourceKey(r map[string]any) string {
	mode, _ := r["mode"].(string)
	typ, _ := r["type"].(string)
	name, _ := r["name"].(string)
	return mode + "." + typ + "." + name
}

// withoutKeys drops the instance keys of a module address:
// module.a[0].module.b["x"] is module.a.module.b. A key is a number or a
// quoted string, which may hold brackets, quotes (escaped) and dots.
func withoutKeys(addr string) string {
	var b strings.Builder
	depth, quoted, escaped := 0, false, false
	for _, c := range addr {
		switch {
		case quoted:
			switch {
			case escaped:
				escaped = false
			case c == '\\':
				escaped = true
			case c == '"':
				quoted = false
			}
		case depth > 0:
			switch c {
			case '"':
				quoted = true
			case '[':
				depth++
			case ']':
				depth--
			}
		case c == '[':
			depth++
		default:
			b.WriteRune(c)
		}
	}
	return b.String()
}

// redactExpressions redacts the arguments of a configuration block
// (attribute name to expression, or to nested blocks) that any of marks
// (the marks of the resource's instances) flags sensitive, in whole or in
// part: the argument's constant value becomes [Sensitive].
func redactExpressions(exprs map[string]any, marks []any) {
	for name, v := range exprs {
		var sub []any
		for _, m := range marks {
			if mm := object(m); mm != nil && mm[name] != nil {
				sub = append(sub, mm[name])
			}
		}
		if !anyMarked(sub) {
			continue
		}
		switch v := v.(type) {
		case map[string]any:
			if isExpression(v) {
				redactConstant(v)
			} else {
				redactExpressions(v, sub) // a single or map nested block
			}
		case []any: // list or set nested blocks: their marks are lists
			var elems []any
			for _, m := range sub {
				if l := list(m); l != nil {
					elems = append(elems, l...)
				} else {
					elems = append(elems, m)
				}
			}
			for _, blk := range v {
				redactExpressions(object(blk), elems)
			}
		}
	}
}

// isExpression reports whether v is one expression (constant_value,
// references) rather than a nested block of them.
func isExpression(v map[string]any) bool {
	for k := range v {
		if k != "constant_value" && k != "references" {
			return false
		}
	}
	return true
}

// redactConstant replaces an expression's constant value, if it has one.
func redactConstant(ex map[string]any) {
	if ex != nil && ex["constant_value"] != nil {
		ex["constant_value"] = Sensitive
	}
}

// anyMarked reports whether any of marks flags something sensitive.
func anyMarked(marks []any) bool {
	for _, m := range marks {
		switch m := m.(type) {
		case bool:
			if m {
				return true
			}
		case map[string]any:
			for _, sub := range m {
				if anyMarked([]any{sub}) {
					return true
				}
			}
		case []any:
			if anyMarked(m) {
				return true
			}
		}
	}
	return false
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
