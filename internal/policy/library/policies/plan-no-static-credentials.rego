package spacelift

# Denies long-lived cloud credentials: AWS IAM access keys, Google service
# account keys, Azure AD application and service principal passwords and
# certificates. Gantry runs get short-lived credentials from cloud
# integrations instead.

deny contains sprintf("%s: creates a static cloud credential; use a cloud integration (OIDC) instead", [r.address]) if {
	some r in input.gantry.resources
	r.kind == "identity_grant"
	r.identity_grant.static_key == true
	"create" in r.actions
}
