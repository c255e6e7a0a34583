package engine

import (
	"fmt"

	"github.com/open-policy-agent/opa/v1/ast"
)

// shape is the kind of value Gantry expects from a rule it reads.
type shape int

const (
	shapeBool        shape = iota // true/false: `approve if {...}`
	shapeStrings                  // set of strings: `deny contains msg if {...}`
	shapeObjects                  // set of objects: `webhook contains {...} if {...}`
	shapeStringOrSet              // a string or a set of strings (push `message`)
	shapeRoles                    // object of space id -> set/object of role ids: `roles[space][role] if {...}`
)

func (s shape) String() string {
	switch s {
	case shapeBool:
		return "a boolean (e.g. `name if { ... }`)"
	case shapeStrings:
		return "a set of strings (e.g. `name contains \"message\" if { ... }`)"
	case shapeObjects:
		return "a set of objects (e.g. `name contains {...} if { ... }`)"
	case shapeStringOrSet:
		return "a string or a set of strings"
	case shapeRoles:
		return "an object of space ids to role ids (e.g. `name[space][role] if { ... }`)"
	}
	return "?"
}

// commonRules are read for every type.
var commonRules = map[string]shape{
	"flag":       shapeStrings,
	"reset_flag": shapeStrings,
	"sample":     shapeBool,
}

// typeRules are the rules Gantry reads per policy type, with their shape.
var typeRules = map[string]map[string]shape{
	TypePlan: {"deny": shapeStrings, "warn": shapeStrings},
	TypeApproval: {
		"approve": shapeBool, "reject": shapeBool,
		"approve_with_note": shapeStrings, "reject_with_note": shapeStrings,
	},
	TypeTrigger: {"trigger": shapeStrings},
	TypePush: {
		"track": shapeBool, "propose": shapeBool, "ignore": shapeBool, "ignore_track": shapeBool,
		"notrigger": shapeBool, "notify": shapeBool, "fail": shapeBool, "prioritize": shapeBool,
		"cancel": shapeStrings, "message": shapeStringOrSet,
	},
	TypeNotification: {
		"webhook": shapeObjects, "slack": shapeObjects, "teams": shapeObjects, "email": shapeObjects,
		"inbox": shapeObjects, "pull_request": shapeObjects,
	},
	TypeLogin: {
		"allow": shapeBool, "admin": shapeBool, "deny": shapeBool, "deny_admin": shapeBool,
		"team": shapeStrings, "space_read": shapeStrings, "space_write": shapeStrings, "space_admin": shapeStrings,
		"roles": shapeRoles,
	},
}

// ruleShape returns the shape Gantry expects of rule name in a policy of
// type typ, if it reads it.
func ruleShape(typ, name string) (shape, bool) {
	if s, ok := typeRules[typ][name]; ok {
		return s, true
	}
	s, ok := commonRules[name]
	return s, ok
}

// checkRuleShapes refuses rules Gantry reads whose declaration cannot give
// the expected shape: a boolean `deny` in a PLAN policy, a partial set
// `approve` in an APPROVAL policy, and so on. What cannot be told from the
// declaration (`deny := some_var`) is checked when evaluating.
func checkRuleShapes(file, typ string, mod *ast.Module) []Diag {
	var diags []Diag
	for _, r := range mod.Rules {
		ref := r.Head.Ref()
		if len(ref) == 0 || len(r.Head.Args) > 0 {
			continue // functions are not read
		}
		v, ok := ref[0].Value.(ast.Var)
		if !ok {
			continue
		}
		want, read := ruleShape(typ, string(v))
		if !read {
			continue
		}
		if got := declaredShape(r.Head); got != "" && !shapeAccepts(want, got) {
			diags = append(diags, diagAt(file, r.Head.Location, fmt.Sprintf(
				"rule %s in a %s policy must be %s, but it is declared as %s", v, typ, want, got)))
		}
	}
	return diags
}

// Declared kinds a rule head can show (the empty string: cannot tell).
const (
	declBool    = "a boolean"
	declSet     = "a set (partial set rule)"
	declObject  = "an object (partial object rule)"
	declString  = "a string"
	declOther   = "a constant that is neither boolean nor set"
	declSetLit  = "a set"
	declObjLit  = "an object"
	declNestObj = "a nested object (rule with a multi-part reference)"
)

// declaredShape tells what a rule head declares, from the syntax alone.
func declaredShape(h *ast.Head) string {
	ref := h.Ref()
	switch {
	case h.RuleKind() == ast.MultiValue:
		return declSet
	case len(ref) > 2:
		return declNestObj
	case len(ref) == 2:
		return declObject
	}
	if h.Value == nil {
		return ""
	}
	switch h.Value.Value.(type) {
	case ast.Boolean:
		return declBool
	case ast.String:
		return declString
	case ast.Set:
		return declSetLit
	case ast.Object:
		return declObjLit
	case ast.Number, ast.Null, *ast.Array:
		return declOther
	default:
		return "" // a variable, reference or comprehension: checked at eval time
	}
}

// shapeAccepts reports whether a rule declared as got can give want.
func shapeAccepts(want shape, got string) bool {
	switch want {
	case shapeBool:
		return got == declBool
	case shapeStrings, shapeObjects:
		return got == declSet || got == declSetLit
	case shapeStringOrSet:
		return got == declSet || got == declSetLit || got == declString
	case shapeRoles:
		return got == declNestObj || got == declObject || got == declObjLit
	}
	return false
}
