package spacelift

# Runs on production stacks (the stack or its space labelled "production")
# need two approvals from two different people; one rejection fails them.
# Runs elsewhere are approved by this policy.

# Edit: the label that marks production, and how many approvers it needs.
production_label := "production"

required_approvals := 2

approve if not production

approve if {
	production
	count(approvers) >= required_approvals
	count(input.reviews.current.rejections) == 0
}

reject if {
	production
	count(input.reviews.current.rejections) > 0
}

production if production_label in input.stack.labels

production if production_label in input.stack.space.labels

approvers contains a.author if some a in input.reviews.current.approvals
