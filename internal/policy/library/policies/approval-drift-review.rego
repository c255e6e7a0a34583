package spacelift

# Runs started by drift detection (which would reconcile drift) wait for one
# approval. Other runs are approved by this policy.

approve if not drift

approve if {
	drift
	count(input.reviews.current.approvals) > 0
}

drift if input.run.drift_detection == true
