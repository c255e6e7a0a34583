package spacelift

# Denies databases reachable from the internet or stored unencrypted, and
# warns about databases without automated backups.

deny contains sprintf("%s: database would be reachable from the internet", [r.address]) if {
	some r in databases
	r.database.public_access == true
}

deny contains sprintf("%s: database storage would not be encrypted", [r.address]) if {
	some r in databases
	r.database.encrypted == false
}

warn contains sprintf("%s: database has no automated backups", [r.address]) if {
	some r in databases
	r.database.backups == false
}

databases contains r if {
	some r in input.gantry.resources
	r.kind == "database"
	r.actions != ["delete"]
}
