package spacelift

# Denies compute instances whose size (AWS instance_type, Azure VM size,
# Google machine_type) is not on the list for their cloud.

# Edit: the sizes allowed on each cloud. A cloud missing here is not checked.
allowed_sizes := {
	"aws": {"t3.micro", "t3.small", "t3.medium", "t3.large"},
	"azure": {"Standard_B1s", "Standard_B2s", "Standard_B2ms"},
	"google": {"e2-micro", "e2-small", "e2-medium", "e2-standard-2"},
}

deny contains sprintf("%s: instance size %s is not allowed on %s", [r.address, size, r.cloud]) if {
	some r in input.gantry.resources
	r.kind == "compute_instance"
	r.actions != ["delete"]
	size := r.compute_instance.size
	size != ""
	not size in allowed_sizes[r.cloud]
	r.cloud in object.keys(allowed_sizes)
}
