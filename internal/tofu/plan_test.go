package tofu

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func readTestdata(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestParsePlan(t *testing.T) {
	tests := []struct {
		file        string
		wantDelta   Delta
		wantChanges bool
	}{
		{"plan_create.json", Delta{Add: 1}, true},
		// update + delete + two replaces (both orders) + create; no-op,
		// read, drift and a no-op output ignored.
		{"plan_mixed.json", Delta{Add: 3, Change: 1, Destroy: 3}, true},
		{"plan_drift_only.json", Delta{}, false},
		{"plan_empty.json", Delta{}, false},
		{"plan_output_only.json", Delta{}, true},
		{"plan_import_forget.json", Delta{Import: 1, Forget: 1}, true},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			delta, changes, err := ParsePlan(readTestdata(t, tt.file))
			if err != nil {
				t.Fatalf("ParsePlan: %v", err)
			}
			if delta != tt.wantDelta || changes != tt.wantChanges {
				t.Errorf("ParsePlan = %+v, %v; want %+v, %v", delta, changes, tt.wantDelta, tt.wantChanges)
			}
			delta, changes, err = ParsePlanReader(bytes.NewReader(readTestdata(t, tt.file)))
			if err != nil || delta != tt.wantDelta || changes != tt.wantChanges {
				t.Errorf("ParsePlanReader = %+v, %v, %v; want %+v, %v", delta, changes, err, tt.wantDelta, tt.wantChanges)
			}
		})
	}
}

func TestParsePlanErrors(t *testing.T) {
	tests := []struct {
		name, input, wantErr string
	}{
		{"empty", "", "parsing plan JSON"},
		{"not JSON", "Error: no plan file", "parsing plan JSON"},
		{"not an object", "[]", "parsing plan JSON"},
		{"no format_version", `{"resource_changes": []}`, "no format_version"},
		{"future format", `{"format_version": "2.0"}`, `unsupported format_version "2.0"`},
		{"bad actions", `{"format_version": "1.2", "resource_changes": [{"change": {"actions": "create"}}]}`, "parsing plan JSON"},
		{"cut short", `{"format_version": "1.2", "prior_state": {"values": [1, 2`, "parsing plan JSON"},
		{"resource changes not a list", `{"format_version": "1.2", "resource_changes": {}}`, "parsing plan JSON"},
		{"two documents", `{"format_version": "1.2"} {"format_version": "1.2"}`, "parsing plan JSON"},
		{"trailing data", `{"format_version": "1.2"}]`, "parsing plan JSON"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := ParsePlan([]byte(tt.input))
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("ParsePlan error = %v, want one containing %q", err, tt.wantErr)
			}
			_, _, err = ParsePlanReader(strings.NewReader(tt.input))
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("ParsePlanReader error = %v, want one containing %q", err, tt.wantErr)
			}
		})
	}
}

func TestParseOutputs(t *testing.T) {
	outs, err := ParseOutputs(readTestdata(t, "state.json"))
	if err != nil {
		t.Fatalf("ParseOutputs: %v", err)
	}
	want := []Output{
		{Name: "account_id", Value: json.Number("123456789012345678"), Type: "number"},
		{Name: "db_password", Value: "hunter2", Sensitive: true, Type: "string"},
		{
			Name:  "endpoint",
			Value: map[string]any{"host": "db.internal", "port": json.Number("5432")},
			Type:  []any{"object", map[string]any{"host": "string", "port": "number"}},
		},
		{Name: "subnet_ids", Value: []any{"subnet-0a1", "subnet-0b2"}, Type: []any{"list", "string"}},
	}
	if !reflect.DeepEqual(outs, want) {
		t.Errorf("ParseOutputs =\n%#v\nwant\n%#v", outs, want)
	}
}

func TestParseOutputsNone(t *testing.T) {
	outs, err := ParseOutputs([]byte(`{"version": 4, "serial": 1, "lineage": "x", "outputs": {}, "resources": []}`))
	if err != nil || len(outs) != 0 {
		t.Errorf("ParseOutputs = %v, %v; want no outputs", outs, err)
	}
}

// Malformed outputs get plain messages, never encoding/json's Go types.
func TestParseOutputsMalformed(t *testing.T) {
	for _, tt := range []struct{ outputs, want string }{
		{`"x"`, "parsing state outputs: the state's outputs are not an object of outputs"},
		{`[1]`, "parsing state outputs: the state's outputs are not an object of outputs"},
		{`{"a": "x"}`, `parsing state outputs: output "a" is not an object with a value, a type and a sensitive flag`},
		{`{"a": {"value": 1, "sensitive": "yes"}}`, `output "a" is not an object`},
	} {
		_, err := ParseOutputs([]byte(`{"version": 4, "serial": 1, "lineage": "x", "outputs": ` + tt.outputs + `}`))
		if err == nil || !strings.Contains(err.Error(), tt.want) || strings.Contains(err.Error(), "struct") {
			t.Errorf("outputs %s: error %v, want %q", tt.outputs, err, tt.want)
		}
	}
}

func TestParseStateHeader(t *testing.T) {
	serial, lineage, version, err := ParseStateHeader(readTestdata(t, "state.json"))
	if err != nil {
		t.Fatalf("ParseStateHeader: %v", err)
	}
	if serial != 12 || lineage != "6c1c1a8e-3f0e-6d5b-2f7a-0d6c9f0f3b21" || version != 4 {
		t.Errorf("ParseStateHeader = %d, %q, %d; want 12, lineage, 4", serial, lineage, version)
	}
}

func TestParseStateErrors(t *testing.T) {
	tests := []struct {
		name, input, wantErr string
	}{
		{"not JSON", "nope", "parsing state"},
		{"no version", `{"serial": 1}`, "no version field"},
		{"encrypted", `{"serial": 1, "encryption_version": "v0", "meta": {}, "encrypted_data": "abc"}`, "encrypted"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, _, err := ParseStateHeader([]byte(tt.input))
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("ParseStateHeader error = %v, want one containing %q", err, tt.wantErr)
			}
			_, err = ParseOutputs([]byte(tt.input))
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("ParseOutputs error = %v, want one containing %q", err, tt.wantErr)
			}
		})
	}
	if _, err := ParseOutputs([]byte(`{"version": 3, "serial": 1, "modules": []}`)); err == nil {
		t.Error("ParseOutputs accepted a version 3 state")
	}
}
