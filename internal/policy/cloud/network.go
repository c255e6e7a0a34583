package cloud

import (
	"strconv"
	"strings"
)

var networkNormalizers = map[string]normalizer{
	"aws_security_group":                  awsSecurityGroup,
	"aws_security_group_rule":             awsSecurityGroupRule,
	"aws_vpc_security_group_ingress_rule": awsVPCRule,
	"aws_vpc_security_group_egress_rule":  awsVPCRule,
	"azurerm_network_security_rule":       azureSecurityRule,
	"azurerm_network_security_group":      azureSecurityGroup,
	"google_compute_firewall":             googleFirewall,
}

// rule is one normalized network rule.
type rule struct {
	direction, access, protocol string
	ports                       [][2]int
	remote                      []string
}

var allPorts = [][2]int{{0, 65535}}

func (r rule) fromAnywhere() bool {
	for _, s := range r.remote {
		switch lower(s) {
		case "0.0.0.0/0", "::/0", "*", "internet", "any":
			return true
		}
	}
	return false
}

func (r rule) fields() map[string]any {
	ports := make([]any, 0, len(r.ports))
	for _, p := range r.ports {
		ports = append(ports, []any{p[0], p[1]})
	}
	return map[string]any{
		"direction":     r.direction,
		"access":        r.access,
		"protocol":      r.protocol,
		"ports":         ports,
		"from_anywhere": r.fromAnywhere(),
		"remote":        stringsToAny(r.remote),
	}
}

// ruleSet builds the kind object: the fields of the rule that matters most
// (allowed ingress open to anywhere, else allowed ingress, else the rest),
// ports merged over the rules of that group, and every rule under "rules".
func ruleSet(rules []rule) map[string]any {
	all := make([]any, 0, len(rules))
	for _, r := range rules {
		all = append(all, r.fields())
	}
	focus := pick(rules, func(r rule) bool { return r.access == "allow" && r.direction == "ingress" && r.fromAnywhere() })
	if len(focus) == 0 {
		focus = pick(rules, func(r rule) bool { return r.access == "allow" && r.direction == "ingress" })
	}
	if len(focus) == 0 {
		focus = pick(rules, func(r rule) bool { return r.access == "allow" })
	}
	if len(focus) == 0 {
		focus = rules
	}
	if len(focus) == 0 {
		return map[string]any{"direction": "", "access": "", "protocol": "", "ports": []any{},
			"from_anywhere": false, "remote": []any{}, "rules": all}
	}
	sum := focus[0]
	sum.ports = nil
	sum.remote = nil
	for _, r := range focus {
		if r.protocol != sum.protocol {
			sum.protocol = "multiple"
		}
		sum.ports = append(sum.ports, r.ports...)
		sum.remote = append(sum.remote, r.remote...)
	}
	f := sum.fields()
	f["rules"] = all
	return f
}

func pick(rules []rule, keep func(rule) bool) []rule {
	var out []rule
	for _, r := range rules {
		if keep(r) {
			out = append(out, r)
		}
	}
	return out
}

// protocol names protocols by their lower-case name; "all" means any.
func protocol(p string) string {
	switch lower(p) {
	case "-1", "*", "all", "any":
		return "all"
	case "6":
		return "tcp"
	case "17":
		return "udp"
	case "1":
		return "icmp"
	case "58":
		return "icmpv6"
	}
	return lower(p)
}

func portsFor(proto string, ports [][2]int) [][2]int {
	switch proto {
	case "all", "tcp", "udp", "sctp":
		if len(ports) == 0 {
			return allPorts
		}
		return ports
	}
	return [][2]int{}
}

// portRange parses "22", "80-90" or "*".
func portRange(s string) ([2]int, bool) {
	s = strings.TrimSpace(s)
	if s == "*" || s == "" {
		return allPorts[0], s == "*"
	}
	from, to, found := strings.Cut(s, "-")
	a, err1 := strconv.Atoi(from)
	b := a
	var err2 error
	if found {
		b, err2 = strconv.Atoi(to)
	}
	return [2]int{a, b}, err1 == nil && err2 == nil
}

func portRanges(specs []string) [][2]int {
	var out [][2]int
	for _, s := range specs {
		if r, ok := portRange(s); ok {
			out = append(out, r)
		}
	}
	return out
}

// --- AWS ---

func awsRule(direction string, v any, remote []string) rule {
	proto := protocol(firstString(get(v, "protocol"), get(v, "ip_protocol")))
	var ports [][2]int
	from, ok1 := num(get(v, "from_port"))
	to, ok2 := num(get(v, "to_port"))
	if ok1 && ok2 && from >= 0 && !(proto == "all" && from == 0 && to == 0) {
		ports = [][2]int{{int(from), int(to)}}
	}
	return rule{direction: direction, access: "allow", protocol: proto, ports: portsFor(proto, ports), remote: remote}
}

func firstString(vs ...any) string {
	for _, v := range vs {
		if s := str(v); s != "" {
			return s
		}
	}
	return ""
}

func awsRemote(v any) []string {
	var out []string
	for _, k := range []string{"cidr_blocks", "ipv6_cidr_blocks", "prefix_list_ids", "security_groups",
		"cidr_ipv4", "cidr_ipv6", "prefix_list_id", "referenced_security_group_id", "source_security_group_id"} {
		out = append(out, strs(get(v, k))...)
	}
	if get(v, "self") == true {
		out = append(out, "self")
	}
	return out
}

func awsSecurityGroup(_ *plan, c *change) map[string]any {
	var rules []rule
	for _, dir := range []string{"ingress", "egress"} {
		for _, b := range list(c.Values[dir]) {
			rules = append(rules, awsRule(dir, b, awsRemote(b)))
		}
	}
	return ruleSet(rules)
}

func awsSecurityGroupRule(_ *plan, c *change) map[string]any {
	return ruleSet([]rule{awsRule(str(c.Values["type"]), c.Values, awsRemote(c.Values))})
}

func awsVPCRule(_ *plan, c *change) map[string]any {
	dir := "ingress"
	if strings.HasSuffix(c.Type, "_egress_rule") {
		dir = "egress"
	}
	return ruleSet([]rule{awsRule(dir, c.Values, awsRemote(c.Values))})
}

// --- Azure ---

func azureRule(v any) rule {
	dir := "ingress"
	remote := append(strs(get(v, "source_address_prefix")), strs(get(v, "source_address_prefixes"))...)
	remote = append(remote, strs(get(v, "source_application_security_group_ids"))...)
	if strings.EqualFold(str(get(v, "direction")), "Outbound") {
		dir = "egress"
		remote = append(strs(get(v, "destination_address_prefix")), strs(get(v, "destination_address_prefixes"))...)
		remote = append(remote, strs(get(v, "destination_application_security_group_ids"))...)
	}
	proto := protocol(str(get(v, "protocol")))
	specs := append(strs(get(v, "destination_port_range")), strs(get(v, "destination_port_ranges"))...)
	return rule{direction: dir, access: lower(str(get(v, "access"))), protocol: proto,
		ports: portsFor(proto, portRanges(specs)), remote: remote}
}

func azureSecurityRule(_ *plan, c *change) map[string]any {
	return ruleSet([]rule{azureRule(c.Values)})
}

func azureSecurityGroup(_ *plan, c *change) map[string]any {
	var rules []rule
	for _, r := range list(c.Values["security_rule"]) {
		rules = append(rules, azureRule(r))
	}
	return ruleSet(rules)
}

// --- Google ---

func googleFirewall(_ *plan, c *change) map[string]any {
	v := c.Values
	dir := "ingress"
	remote := strs(v["source_ranges"])
	if strings.EqualFold(str(v["direction"]), "EGRESS") {
		dir = "egress"
		remote = strs(v["destination_ranges"])
	}
	// Without ranges, tags or service accounts, a rule applies to every
	// address (0.0.0.0/0).
	if len(remote) == 0 && len(strs(v["source_tags"])) == 0 && len(strs(v["source_service_accounts"])) == 0 {
		remote = []string{"0.0.0.0/0"}
	}
	remote = append(remote, strs(v["source_tags"])...)
	remote = append(remote, strs(v["source_service_accounts"])...)
	var rules []rule
	if v["disabled"] != true {
		for _, access := range []string{"allow", "deny"} {
			for _, b := range list(v[access]) {
				proto := protocol(str(get(b, "protocol")))
				rules = append(rules, rule{direction: dir, access: access, protocol: proto,
					ports: portsFor(proto, portRanges(strs(get(b, "ports")))), remote: remote})
			}
		}
	}
	return ruleSet(rules)
}
