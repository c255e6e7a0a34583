package cloud

import (
	"encoding/json"
	"strings"
)

// statement is one statement of an AWS IAM or resource policy document.
type statement struct {
	Effect    string
	Principal []string // "*" for everyone; AWS/Service/Federated values flattened
	Action    []string
	NotAction []string
	Resource  []string
	Condition map[string]any
}

// parsePolicy decodes an AWS policy document (a JSON string, as the plan
// carries it). It returns nil if the document is unknown or malformed.
func parsePolicy(v any) []statement {
	s, ok := v.(string)
	if !ok || s == "" {
		return nil
	}
	var doc struct {
		Statement json.RawMessage
	}
	if json.Unmarshal([]byte(s), &doc) != nil || len(doc.Statement) == 0 {
		return nil
	}
	var raws []map[string]any
	if json.Unmarshal(doc.Statement, &raws) != nil {
		var one map[string]any
		if json.Unmarshal(doc.Statement, &one) != nil {
			return nil
		}
		raws = []map[string]any{one}
	}
	out := make([]statement, 0, len(raws))
	for _, r := range raws {
		out = append(out, statement{
			Effect:    str(r["Effect"]),
			Principal: principals(r["Principal"]),
			Action:    strs(r["Action"]),
			NotAction: strs(r["NotAction"]),
			Resource:  strs(r["Resource"]),
			Condition: obj(r["Condition"]),
		})
	}
	return out
}

func principals(v any) []string {
	if s, ok := v.(string); ok {
		return []string{s}
	}
	var out []string
	for _, p := range obj(v) {
		out = append(out, strs(p)...)
	}
	return out
}

func (s statement) allows() bool { return strings.EqualFold(s.Effect, "Allow") }

func (s statement) anyone() bool {
	for _, p := range s.Principal {
		if p == "*" {
			return true
		}
	}
	return false
}

// narrowingConditions limit a statement to a network or an organization;
// a statement for Principal "*" carrying one of them is not public.
var narrowingConditions = []string{
	"aws:sourceip", "aws:sourcevpc", "aws:sourcevpce", "aws:principalorgid",
	"aws:principalaccount", "aws:sourceaccount", "aws:sourcearn", "aws:principalarn",
}

func (s statement) narrowed() bool {
	for _, cond := range s.Condition {
		for key := range obj(cond) {
			for _, n := range narrowingConditions {
				if strings.EqualFold(key, n) {
					return true
				}
			}
		}
	}
	return false
}

// grants reports whether the statement allows an action matching one of
// the given prefixes (lower case, e.g. "s3:get"); "*" and "s3:*" match all.
func (s statement) grants(prefixes ...string) bool {
	if len(s.NotAction) > 0 {
		return true
	}
	for _, a := range s.Action {
		a = lower(a)
		if a == "*" || a == "s3:*" {
			return true
		}
		for _, p := range prefixes {
			if strings.HasPrefix(a, p) || strings.HasPrefix(p, strings.TrimSuffix(a, "*")) && strings.HasSuffix(a, "*") {
				return true
			}
		}
	}
	return false
}

// publicAccess reads a bucket policy: does it let anyone read or write?
func publicAccess(doc []statement) (read, write bool) {
	for _, s := range doc {
		if !s.allows() || !s.anyone() || s.narrowed() {
			continue
		}
		if s.grants("s3:get", "s3:list") {
			read = true
		}
		if s.grants("s3:put", "s3:delete", "s3:abortmultipartupload", "s3:restore") {
			write = true
		}
	}
	return read, write
}

// wildcard reports an Allow statement whose actions contain "*" (or use
// NotAction); admin reports "Action": "*" on "Resource": "*".
func wildcardPolicy(doc []statement) (wildcard, admin bool) {
	for _, s := range doc {
		if !s.allows() {
			continue
		}
		all := len(s.NotAction) > 0
		for _, a := range s.Action {
			if strings.Contains(a, "*") {
				wildcard = true
			}
			if a == "*" {
				all = true
			}
		}
		if len(s.NotAction) > 0 {
			wildcard = true
		}
		if all && contains(s.Resource, "*") {
			admin = true
		}
	}
	return wildcard, admin
}

func contains(ss []string, s string) bool {
	for _, e := range ss {
		if e == s {
			return true
		}
	}
	return false
}
