package spacelift

# Starts a proposed run (plan only) for every open pull request that is not
# a draft; draft pull requests are ignored.

propose if {
	input.pull_request.id
	not input.pull_request.closed
	not input.pull_request.draft
}

ignore if input.pull_request.draft == true
