package spacelift

# Ignores pushes that change no file under the stack's project root (or one
# of its additional project globs).

ignore if not affected

affected if {
	some file in input.push.affected_files
	under_root(file)
}

affected if {
	some file in input.push.affected_files
	some pattern in object.get(input.stack, "additional_project_globs", [])
	glob.match(pattern, ["/"], file)
}

under_root(_) if root == ""

under_root(file) if {
	root != ""
	startswith(file, concat("", [root, "/"]))
}

root := trim(object.get(input.stack, "project_root", ""), "/.")
