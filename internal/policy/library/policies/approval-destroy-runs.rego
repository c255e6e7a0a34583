package spacelift

# Destroy runs wait for one approval; any rejection fails them. Other runs
# are approved by this policy.

approve if input.run.type != "DESTROY"

approve if {
	input.run.type == "DESTROY"
	count(input.reviews.current.approvals) > 0
	count(input.reviews.current.rejections) == 0
}

reject if {
	input.run.type == "DESTROY"
	count(input.reviews.current.rejections) > 0
}
