package spacelift

# Denies resources created or updated outside the regions allowed for their
# cloud. The region comes from the resource (region, location, zone) or its
# provider configuration; resources without one (IAM, some child
# resources) are not checked.

# Edit: the regions allowed on each cloud (lower case, Azure names without
# spaces, Google multi-regions such as "eu" included).
allowed_regions := {
	"aws": {"eu-west-1", "eu-central-1"},
	"azure": {"westeurope", "northeurope"},
	"google": {"europe-west1", "europe-west4", "eu"},
}

deny contains sprintf("%s: region %s is not allowed on %s", [r.address, r.region, r.cloud]) if {
	some r in input.gantry.resources
	r.actions != ["delete"]
	r.region != ""
	r.cloud in object.keys(allowed_regions)
	not r.region in allowed_regions[r.cloud]
}
