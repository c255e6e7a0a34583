// Package cloud normalizes the resource changes of an OpenTofu/Terraform plan
// (`tofu show -json`) into kinds that mean the same on AWS, Azure and Google
// Cloud, so that one Rego rule over input.gantry.resources covers every cloud.
// docs/policy-multicloud.md documents the mapping.
package cloud

import (
	"regexp"
	"strings"
)

// Kinds of normalized resources.
const (
	KindStorageBucket   = "storage_bucket"
	KindNetworkRule     = "network_rule"
	KindIdentityGrant   = "identity_grant"
	KindDatabase        = "database"
	KindComputeInstance = "compute_instance"
	KindOther           = "other"
)

// change is one entry of resource_changes with the values a reader needs.
type change struct {
	Address  string
	Type     string
	Mode     string
	Provider string // short name: aws, azurerm, google...
	Actions  []string
	Values   map[string]any // after (unknowns as nil), or before for deletes
	Unknown  any            // after_unknown (nil for deletes)
	Base     string         // address without instance keys
	Module   string         // module path without instance keys ("" for root)
	Config   map[string]any // the resource's configuration block, if found
}

// plan indexes a decoded plan for the normalizers.
type plan struct {
	changes   []*change // every resource change, no-ops included
	byType    map[string][]*change
	providers map[string]any // configuration.provider_config
	variables map[string]any
}

// Normalize reads a plan (the decoded JSON of `show -json`) and returns the
// entries of input.gantry.resources as JSON-compatible values
// (map[string]any), in resource_changes order. Resources whose actions are
// ["no-op"] or ["read"] are left out.
func Normalize(planJSON map[string]any) []any {
	p := index(planJSON)
	out := []any{}
	for _, c := range p.changes {
		if !changed(c.Actions) {
			continue
		}
		out = append(out, p.entry(c))
	}
	return out
}

func changed(actions []string) bool {
	if len(actions) == 0 {
		return false
	}
	if len(actions) == 1 && (actions[0] == "no-op" || actions[0] == "read") {
		return false
	}
	return true
}

func isDelete(actions []string) bool {
	return len(actions) == 1 && actions[0] == "delete"
}

var instanceKey = regexp.MustCompile(`\[[^\]]*\]`)

func index(planJSON map[string]any) *plan {
	p := &plan{byType: map[string][]*change{}}
	cfg := obj(planJSON["configuration"])
	p.providers = obj(cfg["provider_config"])
	p.variables = obj(planJSON["variables"])
	configs := map[string]map[string]any{}
	walkModule(obj(cfg["root_module"]), "", configs)
	for _, raw := range list(planJSON["resource_changes"]) {
		rc := obj(raw)
		if rc == nil {
			continue
		}
		ch := obj(rc["change"])
		c := &change{
			Address:  str(rc["address"]),
			Type:     str(rc["type"]),
			Mode:     str(rc["mode"]),
			Provider: providerShort(str(rc["provider_name"])),
			Actions:  strs(ch["actions"]),
		}
		// Sensitive values are read as unknown, so that the normalized
		// view never reveals what the plan input sanitizes.
		if isDelete(c.Actions) {
			c.Values = obj(resolve(ch["before"], ch["before_sensitive"]))
		} else {
			c.Unknown = ch["after_unknown"]
			c.Values = obj(resolve(resolve(ch["after"], c.Unknown), ch["after_sensitive"]))
		}
		if c.Values == nil {
			c.Values = map[string]any{}
		}
		c.Base = instanceKey.ReplaceAllString(c.Address, "")
		c.Module = instanceKey.ReplaceAllString(str(rc["module_address"]), "")
		c.Config = configs[c.Base]
		p.changes = append(p.changes, c)
		p.byType[c.Type] = append(p.byType[c.Type], c)
	}
	return p
}

// walkModule records every resource block of a configuration module under
// its absolute address (module path + type.name, without instance keys).
func walkModule(m map[string]any, prefix string, into map[string]map[string]any) {
	for _, r := range list(m["resources"]) {
		rm := obj(r)
		if rm != nil {
			into[prefix+str(rm["address"])] = rm
		}
	}
	for name, call := range obj(m["module_calls"]) {
		walkModule(obj(get(call, "module")), prefix+"module."+name+".", into)
	}
}

// providerShort turns "registry.opentofu.org/hashicorp/aws" into "aws".
func providerShort(full string) string {
	if i := strings.LastIndex(full, "/"); i >= 0 {
		return full[i+1:]
	}
	return full
}

func cloudOf(provider string) string {
	switch provider {
	case "aws", "awscc":
		return "aws"
	case "azurerm", "azuread", "azapi":
		return "azure"
	case "google", "google-beta":
		return "google"
	}
	return ""
}

func (p *plan) entry(c *change) map[string]any {
	e := map[string]any{
		"address":  c.Address,
		"type":     c.Type,
		"provider": c.Provider,
		"cloud":    cloudOf(c.Provider),
		"kind":     KindOther,
		"actions":  stringsToAny(c.Actions),
		"region":   p.region(c),
	}
	tags, taggable := tagsOf(c)
	e["tags"] = tags
	e["taggable"] = taggable
	if c.Mode != "data" {
		if kind, fields := p.classify(c); kind != "" {
			e["kind"] = kind
			e[kind] = fields
		}
	}
	return e
}

// classify maps a resource to its kind and the kind-specific object.
func (p *plan) classify(c *change) (string, map[string]any) {
	if f := storageNormalizers[c.Type]; f != nil {
		return KindStorageBucket, f(p, c)
	}
	if f := networkNormalizers[c.Type]; f != nil {
		return KindNetworkRule, f(p, c)
	}
	if f := databaseNormalizers[c.Type]; f != nil {
		return KindDatabase, f(p, c)
	}
	if f := computeNormalizers[c.Type]; f != nil {
		return KindComputeInstance, f(p, c)
	}
	if fields := p.identity(c); fields != nil {
		return KindIdentityGrant, fields
	}
	return "", nil
}

func stringsToAny(ss []string) []any {
	out := make([]any, len(ss))
	for i, s := range ss {
		out[i] = s
	}
	return out
}

// tagsOf merges AWS tags and tags_all, Azure tags, Google labels and
// terraform_labels. Unknown values are left out. taggable reports whether
// the resource has such an attribute at all.
func tagsOf(c *change) (map[string]any, bool) {
	tags := map[string]any{}
	taggable := false
	var keys []string
	switch cloudOf(c.Provider) {
	case "google":
		keys = []string{"terraform_labels", "labels"}
	default:
		keys = []string{"tags_all", "tags"}
	}
	for _, k := range keys {
		v, ok := c.Values[k]
		if !ok && !isUnknown(c.Unknown, k) {
			continue
		}
		taggable = true
		for tk, tv := range obj(v) {
			if tv != nil {
				tags[tk] = tv
			}
		}
	}
	if c.Type == "google_sql_database_instance" {
		for tk, tv := range obj(get(c.Values, "settings", "user_labels")) {
			taggable = true
			tags[tk] = tv
		}
	}
	return tags, taggable
}

// references returns the absolute addresses (without instance keys) that
// the configuration expression of attr refers to.
func (c *change) references(attr ...string) []string {
	if c.Config == nil {
		return nil
	}
	expr := get(c.Config["expressions"], attr...)
	var out []string
	for _, r := range strs(get(expr, "references")) {
		if !strings.HasPrefix(r, "var.") && !strings.HasPrefix(r, "local.") {
			out = append(out, c.Module+modulePrefix(c.Module)+r)
		}
	}
	return out
}

func modulePrefix(module string) string {
	if module == "" {
		return ""
	}
	return "."
}

// refersTo reports whether the expression of attr in c refers to target
// (to the resource itself or one of its attributes).
func (c *change) refersTo(target *change, attr ...string) bool {
	for _, r := range c.references(attr...) {
		r = instanceKey.ReplaceAllString(r, "")
		if r == target.Base || strings.HasPrefix(r, target.Base+".") {
			return true
		}
	}
	return false
}

// related returns the changes of the given types that point at parent:
// attr's known value equals one of parent's identifying values, or attr's
// configuration expression refers to parent.
func (p *plan) related(parent *change, attr string, ids []string, types ...string) []*change {
	var out []*change
	for _, t := range types {
		for _, c := range p.byType[t] {
			if c == parent {
				continue
			}
			if matchesID(str(c.Values[attr]), ids) || c.refersTo(parent, attr) {
				out = append(out, c)
			}
		}
	}
	return out
}

func matchesID(v string, ids []string) bool {
	if v == "" {
		return false
	}
	for _, id := range ids {
		if id != "" && (v == id || strings.TrimPrefix(v, "b/") == id) {
			return true
		}
	}
	return false
}
