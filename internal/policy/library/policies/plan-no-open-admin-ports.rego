package spacelift

# Denies network rules (security groups and their rules, network security
# groups and rules, firewall rules) that let the whole internet reach an
# administration port.

# Edit: the ports no rule may open to 0.0.0.0/0, ::/0, "*" or "Internet".
admin_ports := {22, 3389, 5985, 5986}

deny contains sprintf("%s: admin port %d is open to the internet", [r.address, port]) if {
	some r in input.gantry.resources
	r.kind == "network_rule"
	r.actions != ["delete"]
	some rule in r.network_rule.rules
	rule.direction == "ingress"
	rule.access == "allow"
	rule.from_anywhere == true
	some range in rule.ports
	some port in admin_ports
	range[0] <= port
	port <= range[1]
}
