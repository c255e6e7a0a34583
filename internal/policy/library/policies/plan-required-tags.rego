package spacelift

# Denies resources that take tags (AWS tags, including provider
# default_tags; Azure tags; Google labels) but lack a required one.

# Edit: the tag (label) keys every taggable resource must carry. Google
# label keys are lower case.
required_tags := {"owner", "cost-center"}

deny contains sprintf("%s: missing required tag %q", [r.address, key]) if {
	some r in input.gantry.resources
	r.taggable == true
	r.cloud != ""
	r.actions != ["delete"]
	some key in required_tags
	not r.tags[key]
}
