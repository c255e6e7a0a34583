package spacelift

# Warns about compute instances that get a public IP address (AWS
# associate_public_ip_address, an Azure NIC with a public IP, a Google
# access_config).

warn contains sprintf("%s: instance gets a public IP address", [r.address]) if {
	some r in input.gantry.resources
	r.kind == "compute_instance"
	r.actions != ["delete"]
	r.compute_instance.public_ip == true
}
