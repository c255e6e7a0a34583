package enginetest

import (
	"fmt"
	"strings"
)

// PlanPolicies returns 20 realistic PLAN policies (Rego v1, package
// spacelift) over input.terraform.resource_changes: tags, instance types,
// public ACLs, open security groups, deletes... Their helper rules have
// distinct names, so they can also be merged into one package for
// `opa eval`. Some use Spacelift's helper aliases (created_resources...).
func PlanPolicies() []string { return planPolicies[:] }

// HelperNames are the helper aliases the policies may use.
var HelperNames = []string{"affected_resources", "created_resources", "deleted_resources", "recreated_resources", "updated_resources"}

// ForOPA rewrites a policy for plain `opa eval`: it imports the helper
// aliases from helperPackage (which the caller provides as a module).
func ForOPA(policy, helperPackage string) string {
	var imports []string
	for _, h := range HelperNames {
		if strings.Contains(policy, h) {
			imports = append(imports, fmt.Sprintf("import %s.%s", helperPackage, h))
		}
	}
	if len(imports) == 0 {
		return policy
	}
	head, rest, _ := strings.Cut(policy, "\n")
	return head + "\n\n" + strings.Join(imports, "\n") + "\n" + rest
}

var planPolicies = [20]string{
	`package spacelift

p01_allowed_types := {"t3.micro", "t3.small", "t3.medium", "m5.large", "m5.xlarge", "c5.2xlarge"}

deny contains sprintf("%s: instance type %s is not allowed", [r.address, r.change.after.instance_type]) if {
	some r in input.terraform.resource_changes
	r.type == "aws_instance"
	"create" in r.change.actions
	not p01_allowed_types[r.change.after.instance_type]
}
`,
	`package spacelift

deny contains sprintf("%s: bucket ACL %s is public", [r.address, r.change.after.acl]) if {
	some r in input.terraform.resource_changes
	r.type == "aws_s3_bucket"
	startswith(r.change.after.acl, "public")
}
`,
	`package spacelift

deny contains sprintf("%s: SSH open to the world", [r.address]) if {
	some r in input.terraform.resource_changes
	r.type == "aws_security_group_rule"
	r.change.after.type == "ingress"
	r.change.after.from_port <= 22
	r.change.after.to_port >= 22
	"0.0.0.0/0" in r.change.after.cidr_blocks
}
`,
	`package spacelift

p04_taggable := {"aws_instance", "aws_s3_bucket", "aws_db_instance", "aws_lambda_function"}

warn contains sprintf("%s: missing tag Owner", [r.address]) if {
	some r in created_resources
	p04_taggable[r.type]
	not r.change.after.tags.Owner
}
`,
	`package spacelift

deny contains sprintf("%s: deleting a database needs an override", [r.address]) if {
	some r in deleted_resources
	r.type == "aws_db_instance"
	not "allow-db-delete" in input.spacelift.stack.labels
}
`,
	`package spacelift

warn contains sprintf("%d resources will be deleted", [n]) if {
	n := count(deleted_resources)
	n > 0
}
`,
	`package spacelift

deny contains sprintf("%s: static AWS credentials are not allowed", [r.address]) if {
	some r in input.terraform.resource_changes
	r.type == "aws_iam_access_key"
	r.change.actions[_] == "create"
}
`,
	`package spacelift

deny contains sprintf("%s: database storage must be encrypted", [r.address]) if {
	some r in input.terraform.resource_changes
	r.type == "aws_db_instance"
	r.change.after.storage_encrypted == false
}
`,
	`package spacelift

warn contains sprintf("large change: %d resources affected", [count(affected_resources)]) if {
	count(affected_resources) > 500
}
`,
	`package spacelift

p10_deprecated := {"python3.7", "go1.x", "nodejs12.x"}

deny contains sprintf("%s: runtime %s is deprecated", [r.address, r.change.after.runtime]) if {
	some r in input.terraform.resource_changes
	r.type == "aws_lambda_function"
	p10_deprecated[r.change.after.runtime]
}
`,
	`package spacelift

warn contains sprintf("%s: bucket versioning is off", [r.address]) if {
	some r in input.terraform.resource_changes
	r.type == "aws_s3_bucket"
	some v in r.change.after.versioning
	not v.enabled
}
`,
	`package spacelift

warn contains sprintf("%s will be replaced", [r.address]) if {
	some r in recreated_resources
	r.type in {"aws_instance", "aws_db_instance"}
}
`,
	`package spacelift

deny contains sprintf("%s: instances may not have public IPs", [r.address]) if {
	some r in input.terraform.resource_changes
	r.type == "aws_instance"
	r.change.after.associate_public_ip_address == true
	input.spacelift.stack.labels[_] == "env:production"
}
`,
	`package spacelift

deny contains sprintf("%s: rule opens every port", [r.address]) if {
	some r in input.terraform.resource_changes
	r.type == "aws_security_group_rule"
	r.change.after.from_port == 0
	r.change.after.to_port == 65535
}
`,
	`package spacelift

p15_env := trim_prefix(l, "env:") if {
	some l in input.spacelift.stack.labels
	startswith(l, "env:")
}

warn contains sprintf("%s: Environment tag %s does not match the stack (%s)", [r.address, e, p15_env]) if {
	some r in input.terraform.resource_changes
	e := r.change.after.tags.Environment
	e != p15_env
}
`,
	`package spacelift

deny contains sprintf("%s: root volume must be encrypted", [r.address]) if {
	some r in input.terraform.resource_changes
	r.type == "aws_instance"
	some d in r.change.after.root_block_device
	d.encrypted == false
}
`,
	`package spacelift

deny contains sprintf("%s: database must not be publicly accessible", [r.address]) if {
	some r in input.terraform.resource_changes
	r.type == "aws_db_instance"
	r.change.after.publicly_accessible
}
`,
	`package spacelift

p18_types contains t if {
	some r in input.terraform.resource_changes
	r.type == "aws_instance"
	t := r.change.after.instance_type
}

p18_counts[t] := count([1 | some x in input.terraform.resource_changes; x.type == "aws_instance"; x.change.after.instance_type == t]) if {
	some t in p18_types
}

warn contains sprintf("%d instances of type %s", [n, t]) if {
	some t, n in p18_counts
	n > 1000
}
`,
	`package spacelift

deny contains sprintf("%s: name %s breaks the naming convention", [r.address, r.name]) if {
	some r in input.terraform.resource_changes
	not regex.match("^[a-z][a-z0-9_]*$", r.name)
}
`,
	`package spacelift

p20_cost_centers := {"cc-100", "cc-101", "cc-102", "cc-103", "cc-104", "cc-105"}

deny contains sprintf("%s: unknown cost center %s", [r.address, cc]) if {
	some r in input.terraform.resource_changes
	cc := r.change.after.tags.CostCenter
	not p20_cost_centers[cc]
}
`,
}
