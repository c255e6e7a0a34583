package spacelift

# Warns when a plan destroys (or replaces) many resources at once. A warning
# makes a person confirm the run.

# Edit: how many deletions a plan may make without a warning.
max_deletes := 10

warn contains sprintf("plan destroys %d resources (more than %d): check the blast radius", [n, max_deletes]) if {
	n := count(deleted)
	n > max_deletes
}

deleted contains r.address if {
	some r in input.gantry.resources
	"delete" in r.actions
}
