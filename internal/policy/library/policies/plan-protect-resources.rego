package spacelift

# Denies destroying (or replacing) protected resources: those tagged or
# labelled protected=true, and those listed by address.

# Edit: the tag/label that marks a resource protected, and addresses that
# are protected whatever their tags.
protected_tag := "protected"

protected_addresses := {"aws_kms_key.state", "azurerm_key_vault.state", "google_kms_key_ring.state"}

deny contains sprintf("%s: resource is protected and must not be destroyed", [r.address]) if {
	some r in input.gantry.resources
	"delete" in r.actions
	protected(r)
}

protected(r) if lower(sprintf("%v", [r.tags[protected_tag]])) == "true"

protected(r) if r.address in protected_addresses
