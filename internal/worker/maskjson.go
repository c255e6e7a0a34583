package worker

import (
	"bytes"
	"encoding/json"
	"strconv"
	"strings"

	"github.com/gantry-iac/gantry/internal/secrets"
	"github.com/gantry-iac/gantry/internal/workerapi"
)

// secretLines are the lines of multi-line secret values (a PEM key, JSON
// credentials) long enough not to mask ordinary text: a tool may print such
// a secret a line at a time, and the log is sent in pieces cut at newlines.
func secretLines(env []workerapi.EnvVar) []string {
	var out []string
	for _, v := range env {
		if !v.Secret || !strings.Contains(v.Value, "\n") {
			continue
		}
		for _, line := range strings.Split(v.Value, "\n") {
			if line = strings.TrimSpace(line); len(line) >= 8 {
				out = append(out, line)
			}
		}
	}
	return out
}

// maskJSON masks the job's secret values in a JSON document (the plan
// JSON, which holds the values of input variables, TF_VAR_ secrets among
// them, and of resource attributes): every string value is masked, and a
// number that is a secret becomes the string "*****". The document stays
// valid JSON.
func maskJSON(m *secrets.Masker, data []byte) ([]byte, error) {
	if m == nil || m.MaxLen() == 0 || m.String(string(data)) == string(data) {
		return data, nil // no secret in it (in any form the masker knows)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, err
	}
	v = maskValue(m, v)
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimRight(buf.Bytes(), "\n"), nil
}

func maskValue(m *secrets.Masker, v any) any {
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
			out[mk] = maskValue(m, e)
		}
		return out
	case []any:
		for i, e := range x {
			x[i] = maskValue(m, e)
		}
		return x
	}
	return v
}
