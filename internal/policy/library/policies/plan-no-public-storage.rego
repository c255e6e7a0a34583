package spacelift

# Denies storage buckets that the plan leaves readable or writable by anyone:
# S3 buckets (with their ACL, policy and public access block resources),
# Azure storage accounts and containers, Cloud Storage buckets (with their
# IAM and ACL resources). Reads only input.gantry.resources, so the rule is
# the same on every cloud.

deny contains sprintf("%s: storage bucket would be publicly readable", [r.address]) if {
	some r in input.gantry.resources
	r.kind == "storage_bucket"
	not deleted(r)
	r.storage_bucket.public_read == true
}

deny contains sprintf("%s: storage bucket would be publicly writable", [r.address]) if {
	some r in input.gantry.resources
	r.kind == "storage_bucket"
	not deleted(r)
	r.storage_bucket.public_write == true
}

deleted(r) if r.actions == ["delete"]
