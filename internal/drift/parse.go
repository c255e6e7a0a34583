// Package drift keeps what drift detection runs found: per stack, the
// resources that changed outside Gantry, down to the attribute, with their
// history (when each drift appeared and when it was resolved), and the last
// check of each stack. It reads the plan JSON of drift detection runs when
// they end, queues the reconciliation runs a stack's drift detection asks
// for, and answers the estate-wide and per-stack views.
//
// Real drift and pending configuration changes are told apart by the plan
// JSON itself: `resource_drift` lists what the refresh found changed in the
// world since the last apply (the world changed); `resource_changes` lists
// what applying the configuration would do, which also includes what the
// code changed. Only the former is drift.
package drift

import (
	"bytes"
	"encoding/json"
	"fmt"
	"sort"
	"strconv"
	"strings"

	"github.com/gantry-iac/gantry/internal/truncate"
)

// Actions: what happened to a resource outside Gantry.
const (
	Changed = "changed"
	Deleted = "deleted"
	Created = "created"
)

// Attribute is one attribute that differs between the state Gantry last
// wrote and the world. Sensitive values are never kept.
type Attribute struct {
	Name      string          `json:"name"`
	Before    json.RawMessage `json:"before,omitempty"`
	After     json.RawMessage `json:"after,omitempty"`
	Sensitive bool            `json:"sensitive,omitempty"`
}

// Resource is one drifted resource.
type Resource struct {
	Address    string      `json:"address"`
	Type       string      `json:"type"`
	Provider   string      `json:"provider"`
	Cloud      string      `json:"cloud"`
	Action     string      `json:"action"`
	Attributes []Attribute `json:"attributes"`
}

// Result is what one drift detection run's plan says.
type Result struct {
	Resources []Resource
	// Clouds are the clouds of every resource the plan covers.
	Clouds []string
	// PendingChanges says applying would change resources that did not
	// drift: the configuration changed since the last apply.
	PendingChanges bool
}

// Limits of what is kept per resource.
const (
	maxAttributes = 200
	maxValue      = 2048
)

type planJSON struct {
	ResourceDrift   []resourceChange `json:"resource_drift"`
	ResourceChanges []resourceChange `json:"resource_changes"`
}

type resourceChange struct {
	Address      string `json:"address"`
	Mode         string `json:"mode"`
	Type         string `json:"type"`
	ProviderName string `json:"provider_name"`
	Change       struct {
		Actions         []string        `json:"actions"`
		Before          json.RawMessage `json:"before"`
		After           json.RawMessage `json:"after"`
		BeforeSensitive json.RawMessage `json:"before_sensitive"`
		AfterSensitive  json.RawMessage `json:"after_sensitive"`
	} `json:"change"`
}

// Parse reads the JSON of `show -json` of a drift detection run's plan.
func Parse(data []byte) (Result, error) {
	var p planJSON
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	if err := dec.Decode(&p); err != nil {
		return Result{}, fmt.Errorf("reading the plan JSON: %w", err)
	}
	var res Result
	clouds := map[string]bool{}
	drifted := map[string]bool{}
	for _, rc := range p.ResourceDrift {
		if rc.Mode == "data" {
			continue
		}
		action := actionOf(rc.Change.Actions)
		if action == "" {
			continue
		}
		r := Resource{Address: rc.Address, Type: rc.Type, Provider: rc.ProviderName, Cloud: Cloud(rc.ProviderName), Action: action}
		r.Attributes = diffAttributes(rc)
		if action == Changed && len(r.Attributes) == 0 {
			continue // only unknown or equal values: nothing a person could see
		}
		drifted[rc.Address] = true
		clouds[r.Cloud] = true
		res.Resources = append(res.Resources, r)
	}
	for _, rc := range p.ResourceChanges {
		if rc.Mode == "data" {
			continue
		}
		clouds[Cloud(rc.ProviderName)] = true
		if drifted[rc.Address] {
			continue
		}
		for _, a := range rc.Change.Actions {
			if a != "no-op" && a != "read" {
				res.PendingChanges = true
			}
		}
	}
	delete(clouds, "")
	for c := range clouds {
		res.Clouds = append(res.Clouds, c)
	}
	sort.Strings(res.Clouds)
	sort.Slice(res.Resources, func(i, j int) bool { return res.Resources[i].Address < res.Resources[j].Address })
	return res, nil
}

func actionOf(actions []string) string {
	switch strings.Join(actions, ",") {
	case "update", "delete,create", "create,delete":
		return Changed
	case "delete":
		return Deleted
	case "create":
		return Created
	}
	return ""
}

// Cloud names the cloud of a provider address
// (registry.opentofu.org/hashicorp/aws): aws, azure, google, or the
// provider's type for anything else.
func Cloud(provider string) string {
	t := provider
	if i := strings.LastIndexByte(t, '/'); i >= 0 {
		t = t[i+1:]
	}
	switch t {
	case "aws", "awscc":
		return "aws"
	case "azurerm", "azuread", "azapi", "azuredevops", "azurestack":
		return "azure"
	case "google", "google-beta":
		return "google"
	}
	return t
}

// diffAttributes lists the attributes that differ between before (the
// state) and after (the world), hiding sensitive values.
func diffAttributes(rc resourceChange) []Attribute {
	before, after := decode(rc.Change.Before), decode(rc.Change.After)
	bs, as := decode(rc.Change.BeforeSensitive), decode(rc.Change.AfterSensitive)
	var out []Attribute
	walk("", before, after, bs, as, &out)
	if len(out) > maxAttributes {
		out = out[:maxAttributes]
	}
	return out
}

func decode(raw json.RawMessage) any {
	if len(raw) == 0 {
		return nil
	}
	var v any
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	if dec.Decode(&v) != nil {
		return nil
	}
	return v
}

// sensitive reports whether a sensitivity marker says the whole value is
// sensitive.
func sensitive(m any) bool { b, ok := m.(bool); return ok && b }

func child(m any, key string) any {
	switch v := m.(type) {
	case map[string]any:
		return v[key]
	case []any:
		i, err := strconv.Atoi(key)
		if err == nil && i >= 0 && i < len(v) {
			return v[i]
		}
	}
	return nil
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

func walk(path string, before, after, bs, as any, out *[]Attribute) {
	if len(*out) > maxAttributes {
		return
	}
	if sensitive(bs) || sensitive(as) {
		if !equal(before, after) {
			*out = append(*out, Attribute{Name: nameOr(path), Sensitive: true})
		}
		return
	}
	bm, bok := before.(map[string]any)
	am, aok := after.(map[string]any)
	if bok && aok {
		keys := map[string]bool{}
		for k := range bm {
			keys[k] = true
		}
		for k := range am {
			keys[k] = true
		}
		sorted := make([]string, 0, len(keys))
		for k := range keys {
			sorted = append(sorted, k)
		}
		sort.Strings(sorted)
		for _, k := range sorted {
			walk(join(path, k), bm[k], am[k], child(bs, k), child(as, k), out)
		}
		return
	}
	bl, blok := before.([]any)
	al, alok := after.([]any)
	if blok && alok && len(bl) == len(al) {
		for i := range bl {
			k := strconv.Itoa(i)
			walk(join(path, k), bl[i], al[i], child(bs, k), child(as, k), out)
		}
		return
	}
	if path == "" {
		// The whole object appeared or went (created or deleted outside).
		return
	}
	if !equal(before, after) {
		if anySensitive(bs) || anySensitive(as) {
			// A shape that changed (a block added or removed, a list
			// that grew) with sensitive values inside: hide it whole.
			*out = append(*out, Attribute{Name: path, Sensitive: true})
			return
		}
		*out = append(*out, Attribute{Name: path, Before: value(before), After: value(after)})
	}
}

// anySensitive reports whether a sensitivity marker marks anything inside
// as sensitive.
func anySensitive(m any) bool {
	switch v := m.(type) {
	case bool:
		return v
	case map[string]any:
		for _, x := range v {
			if anySensitive(x) {
				return true
			}
		}
	case []any:
		for _, x := range v {
			if anySensitive(x) {
				return true
			}
		}
	}
	return false
}

func nameOr(path string) string {
	if path == "" {
		return "(resource)"
	}
	return path
}

func equal(a, b any) bool {
	x, _ := json.Marshal(a)
	y, _ := json.Marshal(b)
	return bytes.Equal(x, y)
}

// value is the JSON of v, shortened when long: a string longer than
// maxValue bytes is cut there (on a character boundary); an object or list
// whose JSON is longer becomes a string of the start of that JSON. Either
// ends "... (truncated)".
func value(v any) json.RawMessage {
	str, isString := v.(string)
	if isString && len(str) > maxValue {
		v = truncate.String(str, maxValue) + truncated
	}
	data, err := json.Marshal(v)
	if err != nil {
		return nil
	}
	if !isString && len(data) > maxValue {
		data, _ = json.Marshal(truncate.String(string(data), maxValue) + truncated)
	}
	return data
}

const truncated = "... (truncated)"
