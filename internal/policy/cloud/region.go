package cloud

import (
	"regexp"
	"strings"
)

var (
	gcpZone = regexp.MustCompile(`^([a-z]+-[a-z]+\d+)-[a-z]$`)
	awsZone = regexp.MustCompile(`^([a-z]{2}(-gov)?-[a-z]+-\d+)[a-z]$`)
)

// region finds where a resource lives: its own region, location, zone or
// availability_zone attribute (a zone is reduced to its region), else the
// location of its Azure resource group when the plan has it, else the
// region of the provider configuration it uses. Regions are lower-cased and
// Azure display names lose their spaces ("West Europe" -> "westeurope").
func (p *plan) region(c *change) string {
	for _, k := range []string{"region", "location"} {
		if s := str(c.Values[k]); s != "" {
			return normRegion(s)
		}
	}
	for _, k := range []string{"zone", "availability_zone"} {
		if s := zoneRegion(str(c.Values[k])); s != "" {
			return s
		}
	}
	if rg := str(c.Values["resource_group_name"]); rg != "" && c.Type != "azurerm_resource_group" {
		for _, g := range p.byType["azurerm_resource_group"] {
			if str(g.Values["name"]) == rg {
				return normRegion(str(g.Values["location"]))
			}
		}
	}
	return p.providerRegion(c)
}

func normRegion(s string) string {
	return strings.ReplaceAll(lower(s), " ", "")
}

func zoneRegion(zone string) string {
	zone = lower(zone)
	if m := gcpZone.FindStringSubmatch(zone); m != nil {
		return m[1]
	}
	if m := awsZone.FindStringSubmatch(zone); m != nil {
		return m[1]
	}
	return ""
}

// providerRegion reads region (AWS, Google) or location from the provider
// block the resource uses, following a root variable reference to its value.
func (p *plan) providerRegion(c *change) string {
	key := ""
	if c.Config != nil {
		key = str(c.Config["provider_config_key"])
	}
	pc := obj(p.providers[key])
	if pc == nil {
		pc = p.defaultProvider(c.Provider)
	}
	if pc == nil {
		return ""
	}
	for _, attr := range []string{"region", "location"} {
		expr := get(pc, "expressions", attr)
		if s := str(get(expr, "constant_value")); s != "" {
			return normRegion(s)
		}
		for _, ref := range strs(get(expr, "references")) {
			name, ok := strings.CutPrefix(ref, "var.")
			if ok && str(get(pc, "module_address")) == "" {
				if s := str(get(p.variables, name, "value")); s != "" {
					return normRegion(s)
				}
			}
		}
	}
	return ""
}

// defaultProvider is the root, un-aliased configuration of a provider.
func (p *plan) defaultProvider(short string) map[string]any {
	for _, v := range p.providers {
		pc := obj(v)
		if str(pc["name"]) == short && str(pc["alias"]) == "" && str(pc["module_address"]) == "" {
			return pc
		}
	}
	return nil
}
