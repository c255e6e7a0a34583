package spacelift

# Tracks (deploys) pushes to the main branch only; pushes to any other
# branch that are not pull requests are ignored.

# Edit: the branch that deploys.
tracked_branch := "main"

track if input.push.branch == tracked_branch

ignore if {
	input.push.branch != tracked_branch
	not pull_request
}

pull_request if input.pull_request.id
