package spacelift

# Denies identity grants with wildcard actions or roles ("*", "s3:*"...) and
# owner-level grants (AWS AdministratorAccess/PowerUserAccess or "*" on "*",
# Azure Owner/Contributor/User Access Administrator, Google roles/owner and
# roles/editor).

# Edit: principals allowed to receive such grants (as the plan names them:
# "role/NAME", an Azure principal id, "user:alice@example.com"...).
exempt_principals := set()

deny contains sprintf("%s: grants owner-level access to %s", [r.address, who(r)]) if {
	some r in grants
	r.identity_grant.owner == true
}

deny contains sprintf("%s: grants wildcard permissions to %s", [r.address, who(r)]) if {
	some r in grants
	r.identity_grant.wildcard == true
	not r.identity_grant.owner
}

grants contains r if {
	some r in input.gantry.resources
	r.kind == "identity_grant"
	r.actions != ["delete"]
	not r.identity_grant.principal in exempt_principals
}

who(r) := r.identity_grant.principal if r.identity_grant.principal != ""

who(r) := "whoever it is attached to" if r.identity_grant.principal == ""
