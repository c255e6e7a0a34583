package tofu

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
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
	FormatVersion   string                  `json:"format_version"`
	ResourceChanges []resourceChange        `json:"resource_changes"`
	OutputChanges   map[string]outputChange `json:"output_changes"`
}

type resourceChange struct {
	Address string `json:"address"`
	Change  struct {
		Actions   []string        `json:"actions"`
		Importing json.RawMessage `json:"importing"`
	} `json:"change"`
}

type outputChange struct {
	Actions []string `json:"actions"`
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
	var c counter
	for _, rc := range p.ResourceChanges {
		c.resource(rc)
	}
	for _, oc := range p.OutputChanges {
		c.output(oc)
	}
	return c.delta, c.hasChanges, nil
}

// ParsePlanReader is ParsePlan of the plan JSON read from r, a value at a
// time: it holds one resource change (or output change) at a time, never
// the plan, whose prior state and values can be far larger.
func ParsePlanReader(r io.Reader) (delta Delta, hasChanges bool, err error) {
	dec := json.NewDecoder(r)
	c, version, err := countPlan(dec)
	if err == nil {
		// One document, as json.Unmarshal wants: output written into the
		// tool's pipe by another process does not pass for a plan.
		if _, terr := dec.Token(); terr != io.EOF {
			err = errors.New("data after the plan's JSON document")
		}
	}
	if err == nil {
		err = checkFormatVersion(version)
	}
	if err != nil {
		return Delta{}, false, fmt.Errorf("parsing plan JSON: %w", err)
	}
	return c.delta, c.hasChanges, nil
}

// countPlan reads a plan JSON's top-level members, counting its changes
// and skipping the rest.
func countPlan(dec *json.Decoder) (c counter, version string, err error) {
	if err := wantDelim(dec, '{'); err != nil {
		return c, "", err
	}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return c, "", err
		}
		switch tok {
		case "format_version":
			err = dec.Decode(&version)
		case "resource_changes":
			err = eachElement(dec, '[', func() error {
				var rc resourceChange
				err := dec.Decode(&rc)
				c.resource(rc)
				return err
			})
		case "output_changes":
			err = eachElement(dec, '{', func() error {
				if _, err := dec.Token(); err != nil { // the output's name
					return err
				}
				var oc outputChange
				err := dec.Decode(&oc)
				c.output(oc)
				return err
			})
		default:
			err = skipValue(dec)
		}
		if err != nil {
			return c, "", err
		}
	}
	return c, version, wantDelim(dec, '}')
}

// eachElement calls fn for each element of the array (open '[') or member
// of the object (open '{') dec is at; null has none.
func eachElement(dec *json.Decoder, open json.Delim, fn func() error) error {
	tok, err := dec.Token()
	if err != nil || tok == nil {
		return err
	}
	if tok != open {
		return fmt.Errorf("want %c, got %v", open, tok)
	}
	for dec.More() {
		if err := fn(); err != nil {
			return err
		}
	}
	_, err = dec.Token()
	return err
}

func wantDelim(dec *json.Decoder, d json.Delim) error {
	tok, err := dec.Token()
	if err == nil && tok != d {
		err = fmt.Errorf("want %c, got %v", d, tok)
	}
	return err
}

// skipValue reads past the value dec is at, a token at a time.
func skipValue(dec *json.Decoder) error {
	depth := 0
	for {
		tok, err := dec.Token()
		if err != nil {
			return err
		}
		switch tok {
		case json.Delim('{'), json.Delim('['):
			depth++
		case json.Delim('}'), json.Delim(']'):
			depth--
		}
		if depth == 0 {
			return nil
		}
	}
}

// counter counts a plan's changes.
type counter struct {
	delta      Delta
	hasChanges bool
}

func (c *counter) resource(rc resourceChange) {
	if len(rc.Change.Importing) > 0 && !bytes.Equal(rc.Change.Importing, []byte("null")) {
		c.delta.Import++
		c.hasChanges = true
	}
	for _, a := range rc.Change.Actions {
		switch a {
		case "create":
			c.delta.Add++
		case "update":
			c.delta.Change++
		case "delete":
			c.delta.Destroy++
		case "forget":
			c.delta.Forget++
		case "no-op", "read":
			continue
		}
		// Any other action (including ones newer than this code)
		// means applying does something.
		c.hasChanges = true
	}
}

func (c *counter) output(oc outputChange) {
	if !onlyNoOp(oc.Actions) {
		c.hasChanges = true
	}
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
