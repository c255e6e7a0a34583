package spacelift

# One approval approves a run and one rejection rejects it, whoever comes
# first does not matter: any rejection wins.

reject if count(input.reviews.current.rejections) > 0

approve if {
	count(input.reviews.current.approvals) > 0
	count(input.reviews.current.rejections) == 0
}
