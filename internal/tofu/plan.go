package tofu

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
)

// Delta counts what a plan would do to resources, as in the tool's
// "Plan: 1 to add, 0 to change, 0 to destroy." A replacement counts once in
// Add and once in Destroy.
type Delta struct {
	Add     int `json:"add"`
	Change  int `json:"change"`
	Destroy int `json:"destroy"`
	// Import and Forget count resources imported into or removed from state
	// without being created or destroyed (import / removed blocks).
	Import int `json:"import"`
	Forget int `json:"forget"`
}

// showPlan is the part of `show -json <planfile>` we read.
type showPlan struct {
	FormatVersion   string `json:"format_version"`
	ResourceChanges []struct {
		Address string `json:"address"`
		Change  struct {
			Actions   []string        `json:"actions"`
			Importing json.RawMessage `json:"importing"`
		} `json:"change"`
	} `json:"resource_changes"`
	OutputChanges map[string]struct {
		Actions []string `json:"actions"`
	} `json:"output_changes"`
}

// ParsePlan reads the JSON of `tofu show -json <planfile>` (or Terraform's)
// and returns the resource counts and whether applying the plan would change
// anything: a resource action other than no-op or read, an import, or an
// output change. Drift (resource_drift) alone is not a change.
func ParsePlan(planJSON []byte) (delta Delta, hasChanges bool, err error) {
	var p showPlan
	if err := json.Unmarshal(planJSON, &p); err != nil {
		return Delta{}, false, fmt.Errorf("parsing plan JSON: %w", err)
	}
	if err := checkFormatVersion(p.FormatVersion); err != nil {
		return Delta{}, false, fmt.Errorf("parsing plan JSON: %w", err)
	}
	for _, rc := range p.ResourceChanges {
		imported := len(rc.Change.Importing) > 0 && !bytes.Equal(rc.Change.Importing, []byte("null"))
		if imported {
			delta.Import++
			hasChanges = true
		}
		for _, a := range rc.Change.Actions {
			switch a {
			case "create":
				delta.Add++
			case "update":
				delta.Change++
			case "delete":
				delta.Destroy++
			case "forget":
				delta.Forget++
			case "no-op", "read":
				continue
			}
			// Any other action (including ones newer than this code)
			// means applying does something.
			hasChanges = true
		}
	}
	for _, oc := range p.OutputChanges {
		if !onlyNoOp(oc.Actions) {
			hasChanges = true
		}
	}
	return delta, hasChanges, nil
}

func onlyNoOp(actions []string) bool {
	for _, a := range actions {
		if a != "no-op" {
			return false
		}
	}
	return true
}

// checkFormatVersion accepts the 1.x JSON formats.
func checkFormatVersion(v string) error {
	if v == "" {
		return errors.New("no format_version (not `show -json` output?)")
	}
	if major, _, _ := strings.Cut(v, "."); major != "1" {
		return fmt.Errorf("unsupported format_version %q", v)
	}
	return nil
}

// Output is one root module output of a state.
type Output struct {
	Name string `json:"name"`
	// Value is the decoded JSON value; numbers are json.Number so large
	// integers keep their exact value.
	Value     any  `json:"value"`
	Sensitive bool `json:"sensitive"`
	// Type is the output's type constraint as the tool writes it
	// ("string", ["list","number"], ...); nil when absent.
	Type any `json:"type"`
}

// stateHeader is the top of a state file (format version 4).
type stateHeader struct {
	Version          *int   `json:"version"`
	Serial           int64  `json:"serial"`
	Lineage          string `json:"lineage"`
	EncryptedData    any    `json:"encrypted_data"`
	EncryptionFormat any    `json:"encryption_version"`
}

func parseStateHeader(stateJSON []byte) (stateHeader, error) {
	var h stateHeader
	if err := json.Unmarshal(stateJSON, &h); err != nil {
		return h, fmt.Errorf("parsing state: %w", err)
	}
	if h.EncryptedData != nil || h.EncryptionFormat != nil {
		return h, errors.New("parsing state: the state is encrypted")
	}
	if h.Version == nil {
		return h, errors.New("parsing state: no version field (not a state file?)")
	}
	return h, nil
}

// ParseStateHeader returns a state file's serial, lineage and format version.
func ParseStateHeader(stateJSON []byte) (serial int64, lineage string, version int, err error) {
	h, err := parseStateHeader(stateJSON)
	if err != nil {
		return 0, "", 0, err
	}
	return h.Serial, h.Lineage, *h.Version, nil
}

// ParseOutputs returns the root module outputs of a state file (format
// version 4, written by Terraform 0.12+ and every OpenTofu), sorted by name.
func ParseOutputs(stateJSON []byte) ([]Output, error) {
	h, err := parseStateHeader(stateJSON)
	if err != nil {
		return nil, err
	}
	if *h.Version < 4 {
		return nil, fmt.Errorf("parsing state: state format version %d is not supported (want 4)", *h.Version)
	}
	// Step by step, so that a malformed state gets a plain message rather
	// than encoding/json's Go types.
	var s struct {
		Outputs map[string]json.RawMessage `json:"outputs"`
	}
	if err := json.Unmarshal(stateJSON, &s); err != nil {
		return nil, errors.New("parsing state outputs: the state's outputs are not an object of outputs")
	}
	outs := make([]Output, 0, len(s.Outputs))
	for name, raw := range s.Outputs {
		var o struct {
			Value     any  `json:"value"`
			Type      any  `json:"type"`
			Sensitive bool `json:"sensitive"`
		}
		dec := json.NewDecoder(bytes.NewReader(raw))
		dec.UseNumber()
		if err := dec.Decode(&o); err != nil {
			return nil, fmt.Errorf("parsing state outputs: output %q is not an object with a value, a type and a sensitive flag", name)
		}
		outs = append(outs, Output{Name: name, Value: o.Value, Sensitive: o.Sensitive, Type: o.Type})
	}
	slices.SortFunc(outs, func(a, b Output) int { return strings.Compare(a.Name, b.Name) })
	return outs, nil
}
