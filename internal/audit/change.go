package audit

import (
	"encoding/json"
	"strings"
)

// Redacted replaces secret values in changes.
const Redacted = "[redacted]"

// secretWords mark an object key whose value is a secret: a key containing
// one of them (case-insensitive) has its value replaced by Redacted.
var secretWords = []string{"secret", "token", "password", "passphrase", "private_key", "credential"}

// NewChange returns the JSON {"before": ..., "after": ...} of an object's
// two versions (either may be nil: a creation has no before, a deletion no
// after), with secrets redacted: the value of every object key naming a
// secret (see secretWords), and the value of every object that holds
// "secret": true next to a "value" (how environment variables are
// shaped). Domain code should still pass views without secrets; this is
// the safety net.
func NewChange(before, after any) (json.RawMessage, error) {
	type change struct {
		Before any `json:"before,omitempty"`
		After  any `json:"after,omitempty"`
	}
	var c change
	for _, p := range []struct {
		in  any
		out *any
	}{{before, &c.Before}, {after, &c.After}} {
		if p.in == nil {
			continue
		}
		raw, err := json.Marshal(p.in)
		if err != nil {
			return nil, err
		}
		var v any
		if err := json.Unmarshal(raw, &v); err != nil {
			return nil, err
		}
		*p.out = redact(v)
	}
	return json.Marshal(c)
}

// redact returns v with secret values replaced.
func redact(v any) any {
	switch v := v.(type) {
	case map[string]any:
		secretValue := v["secret"] == true
		for k, e := range v {
			switch {
			case isSecretKey(k) && e != nil && e != false && e != "":
				if _, isBool := e.(bool); isBool {
					continue // a flag such as "secret": true is no secret
				}
				v[k] = Redacted
			case secretValue && k == "value" && e != nil:
				v[k] = Redacted
			default:
				v[k] = redact(e)
			}
		}
		return v
	case []any:
		for i, e := range v {
			v[i] = redact(e)
		}
		return v
	}
	return v
}

func isSecretKey(k string) bool {
	k = strings.ToLower(k)
	for _, w := range secretWords {
		if strings.Contains(k, w) {
			return true
		}
	}
	return false
}
