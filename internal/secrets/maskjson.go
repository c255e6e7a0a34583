package secrets

import (
	"bytes"
	"encoding/json"
	"strconv"
	"strings"
)

// What masks a secret variable or file, and masking inside JSON documents:
// the run's log, its plan JSON and the stack's outputs hide the same
// values the same way.

// VariableForms are the values that mask a secret variable: the value and,
// for a multi-line value (a PEM key, JSON credentials), each of its lines
// long enough not to mask ordinary text (a tool may print such a secret a
// line at a time, and a log is sent in pieces cut at newlines).
func VariableForms(value string) []string {
	out := []string{value}
	if strings.Contains(value, "\n") {
		out = append(out, lines(value)...)
	}
	return out
}

// FileForms are the values that mask a secret file: its whole content, the
// content without surrounding space, and each of its lines long enough not
// to mask ordinary text.
func FileForms(content []byte) []string {
	s := string(content)
	return append([]string{s, strings.TrimSpace(s)}, lines(s)...)
}

// lines are the lines of s of 8 characters or more, surrounding space
// trimmed.
func lines(s string) []string {
	var out []string
	for _, line := range strings.Split(s, "\n") {
		if line = strings.TrimSpace(line); len(line) >= 8 {
			out = append(out, line)
		}
	}
	return out
}

// JSON masks the secret values in a JSON document (a plan JSON, which holds
// the values of input variables, TF_VAR_ secrets among them, and of
// resource attributes): see Value. The document stays valid JSON; one
// without a secret in it (in any form the masker knows) is returned as it
// is.
func (m *Masker) JSON(data []byte) ([]byte, error) {
	if m == nil || m.MaxLen() == 0 || m.String(string(data)) == string(data) {
		return data, nil
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, err
	}
	v = m.Value(v)
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimRight(buf.Bytes(), "\n"), nil
}

// Value masks a decoded JSON value (numbers decoded as json.Number): every
// string, and every object key, is masked, and a number that is a secret
// becomes the string Mask. Arrays are masked in place.
func (m *Masker) Value(v any) any {
	if m == nil {
		return v
	}
	switch x := v.(type) {
	case string:
		return m.String(x)
	case json.Number:
		if s := m.String(string(x)); s != string(x) {
			return s
		}
		return x
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			mk := m.String(k) // a secret can be a key too (for_each, tags)
			if _, taken := out[mk]; taken && mk != k {
				mk += "#" + strconv.Itoa(len(out)) // two keys masked alike stay apart
			}
			out[mk] = m.Value(e)
		}
		return out
	case []any:
		for i, e := range x {
			x[i] = m.Value(e)
		}
		return x
	}
	return v
}
