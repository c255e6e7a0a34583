package cloud

import (
	"encoding/json"
	"reflect"
	"testing"
)

// rc builds one resource_changes entry of a plan.
func rc(address, typ, provider string, actions []any, values, unknown map[string]any) map[string]any {
	change := map[string]any{"actions": actions, "after_unknown": unknown, "before_sensitive": false, "after_sensitive": map[string]any{}}
	if len(actions) == 1 && actions[0] == "delete" {
		change["before"], change["after"] = values, nil
	} else {
		change["before"], change["after"] = nil, values
	}
	return map[string]any{"address": address, "mode": "managed", "type": typ, "name": "x",
		"provider_name": "registry.opentofu.org/hashicorp/" + provider, "change": change}
}

var (
	create = []any{"create"}
	noop   = []any{"no-op"}
)

func planOf(changes ...map[string]any) map[string]any {
	l := make([]any, len(changes))
	for i, c := range changes {
		l[i] = c
	}
	return map[string]any{"format_version": "1.2", "resource_changes": l}
}

// kindOf normalizes a plan and returns the kind object of address, through
// JSON so that numbers are float64.
func kindOf(t *testing.T, plan map[string]any, address string) map[string]any {
	t.Helper()
	for _, e := range Normalize(plan) {
		m := e.(map[string]any)
		if m["address"] == address {
			b, _ := json.Marshal(m)
			var out map[string]any
			_ = json.Unmarshal(b, &out)
			k, _ := out[out["kind"].(string)].(map[string]any)
			if k == nil {
				k = map[string]any{}
			}
			k["_kind"], k["_region"], k["_tags"] = out["kind"], out["region"], out["tags"]
			return k
		}
	}
	t.Fatalf("no entry %s", address)
	return nil
}

func policyJSON(stmts ...map[string]any) string {
	b, _ := json.Marshal(map[string]any{"Version": "2012-10-17", "Statement": stmts})
	return string(b)
}

func check(t *testing.T, got map[string]any, want map[string]any) {
	t.Helper()
	for k, w := range want {
		if !reflect.DeepEqual(got[k], w) {
			t.Errorf("%s = %#v, want %#v (all: %v)", k, got[k], w, got)
		}
	}
}

func TestS3BucketPolicy(t *testing.T) {
	bucket := rc("aws_s3_bucket.b", "aws_s3_bucket", "aws", noop, map[string]any{"bucket": "site", "id": "site"}, nil)
	public := policyJSON(map[string]any{"Effect": "Allow", "Principal": map[string]any{"AWS": "*"}, "Action": "s3:GetObject", "Resource": "arn:aws:s3:::site/*"})
	vpce := policyJSON(map[string]any{"Effect": "Allow", "Principal": "*", "Action": "s3:*", "Resource": "*",
		"Condition": map[string]any{"StringEquals": map[string]any{"aws:SourceVpce": "vpce-1"}}})
	write := policyJSON(map[string]any{"Effect": "Allow", "Principal": "*", "Action": []any{"s3:PutObject"}, "Resource": "*"})
	cases := []struct {
		name, policy string
		read, writes bool
	}{{"public read", public, true, false}, {"narrowed by vpce", vpce, false, false}, {"public write", write, false, true}}
	for _, tc := range cases {
		pol := rc("aws_s3_bucket_policy.p", "aws_s3_bucket_policy", "aws", create, map[string]any{"bucket": "site", "policy": tc.policy}, nil)
		got := kindOf(t, planOf(bucket, pol), "aws_s3_bucket_policy.p")
		check(t, got, map[string]any{"_kind": KindStorageBucket, "name": "site", "public_read": tc.read, "public_write": tc.writes})
	}
	// An access block on the unchanged bucket cancels the public policy.
	pol := rc("aws_s3_bucket_policy.p", "aws_s3_bucket_policy", "aws", create, map[string]any{"bucket": "site", "policy": public}, nil)
	pab := rc("aws_s3_bucket_public_access_block.p", "aws_s3_bucket_public_access_block", "aws", noop,
		map[string]any{"bucket": "site", "block_public_policy": true}, nil)
	check(t, kindOf(t, planOf(bucket, pol, pab), "aws_s3_bucket_policy.p"), map[string]any{"public_read": false})
	// Without the bucket in the plan, the part speaks for itself.
	check(t, kindOf(t, planOf(pol), "aws_s3_bucket_policy.p"), map[string]any{"public_read": true, "versioning": nil})
}

func TestIAMDocuments(t *testing.T) {
	admin := policyJSON(map[string]any{"Effect": "Allow", "Action": "*", "Resource": "*"})
	narrow := policyJSON(map[string]any{"Effect": "Allow", "Action": "ec2:Describe*", "Resource": "*"})
	pol := rc("aws_iam_policy.admin", "aws_iam_policy", "aws", create, map[string]any{"name": "admin", "policy": admin, "arn": nil},
		map[string]any{"arn": true})
	att := rc("aws_iam_role_policy_attachment.a", "aws_iam_role_policy_attachment", "aws", create,
		map[string]any{"role": "ci", "policy_arn": nil}, map[string]any{"policy_arn": true})
	plan := planOf(pol, att)
	plan["configuration"] = map[string]any{"root_module": map[string]any{"resources": []any{
		map[string]any{"address": "aws_iam_role_policy_attachment.a", "expressions": map[string]any{
			"policy_arn": map[string]any{"references": []any{"aws_iam_policy.admin.arn", "aws_iam_policy.admin"}}}},
	}}}
	check(t, kindOf(t, plan, "aws_iam_policy.admin"), map[string]any{"owner": true, "wildcard": true, "principal": ""})
	check(t, kindOf(t, plan, "aws_iam_role_policy_attachment.a"), map[string]any{"owner": true, "wildcard": true, "principal": "role/ci"})
	inline := rc("aws_iam_user_policy.u", "aws_iam_user_policy", "aws", create, map[string]any{"user": "bob", "name": "d", "policy": narrow}, nil)
	check(t, kindOf(t, planOf(inline), "aws_iam_user_policy.u"), map[string]any{"owner": false, "wildcard": true, "principal": "user/bob"})
	binding := rc("google_project_iam_binding.e", "google_project_iam_binding", "google", create,
		map[string]any{"role": "roles/editor", "members": []any{"user:a@x.example", "user:b@x.example"}}, nil)
	check(t, kindOf(t, planOf(binding), "google_project_iam_binding.e"),
		map[string]any{"owner": true, "principals": []any{"user:a@x.example", "user:b@x.example"}})
}

func TestNetworkRuleShapes(t *testing.T) {
	cases := []struct {
		typ, provider string
		values        map[string]any
		want          map[string]any
	}{
		{"aws_security_group_rule", "aws", map[string]any{"type": "ingress", "protocol": "-1", "from_port": 0, "to_port": 0, "cidr_blocks": []any{"10.0.0.0/8"}},
			map[string]any{"protocol": "all", "ports": []any{[]any{0.0, 65535.0}}, "from_anywhere": false}},
		{"aws_vpc_security_group_ingress_rule", "aws", map[string]any{"ip_protocol": "tcp", "from_port": 5432, "to_port": 5432, "cidr_ipv6": "::/0"},
			map[string]any{"direction": "ingress", "ports": []any{[]any{5432.0, 5432.0}}, "from_anywhere": true}},
		{"aws_vpc_security_group_egress_rule", "aws", map[string]any{"ip_protocol": "icmp", "from_port": 8, "to_port": 0, "cidr_ipv4": "0.0.0.0/0"},
			map[string]any{"direction": "egress", "protocol": "icmp", "ports": []any{}}},
		{"azurerm_network_security_rule", "azurerm", map[string]any{"direction": "Inbound", "access": "Deny", "protocol": "*",
			"destination_port_range": nil, "destination_port_ranges": []any{"1000-2000", "3389"}, "source_address_prefix": "Any"},
			map[string]any{"access": "deny", "ports": []any{[]any{1000.0, 2000.0}, []any{3389.0, 3389.0}}, "from_anywhere": true}},
		{"google_compute_firewall", "google", map[string]any{"direction": "INGRESS", "allow": []any{map[string]any{"protocol": "tcp", "ports": []any{}}}},
			map[string]any{"ports": []any{[]any{0.0, 65535.0}}, "from_anywhere": true, "remote": []any{"0.0.0.0/0"}}},
		{"google_compute_firewall", "google", map[string]any{"direction": "INGRESS", "source_tags": []any{"bastion"},
			"allow": []any{map[string]any{"protocol": "tcp", "ports": []any{"22"}}, map[string]any{"protocol": "udp", "ports": []any{"53"}}}},
			map[string]any{"protocol": "multiple", "from_anywhere": false}},
	}
	for _, tc := range cases {
		got := kindOf(t, planOf(rc(tc.typ+".r", tc.typ, tc.provider, create, tc.values, nil)), tc.typ+".r")
		check(t, got, tc.want)
	}
}

func TestValuesAndRegions(t *testing.T) {
	// A deletion reads before; an unknown value is null; tags merge.
	gone := rc("aws_instance.old", "aws_instance", "aws", []any{"delete"},
		map[string]any{"instance_type": "t2.micro", "availability_zone": "us-west-2b", "tags": map[string]any{"a": "1"}}, nil)
	later := rc("aws_instance.new", "aws_instance", "aws", create,
		map[string]any{"instance_type": "t3.micro", "associate_public_ip_address": nil, "tags": map[string]any{"a": "1"}, "tags_all": nil},
		map[string]any{"associate_public_ip_address": true, "tags_all": true})
	plan := planOf(gone, later)
	plan["configuration"] = map[string]any{"provider_config": map[string]any{
		"aws": map[string]any{"name": "aws", "expressions": map[string]any{"region": map[string]any{"constant_value": "ap-southeast-2"}}}}}
	check(t, kindOf(t, plan, "aws_instance.old"), map[string]any{"size": "t2.micro", "_region": "us-west-2", "_tags": map[string]any{"a": "1"}})
	check(t, kindOf(t, plan, "aws_instance.new"), map[string]any{"public_ip": nil, "_region": "ap-southeast-2"})
	// An Azure VM whose NIC is not in the plan: public_ip unknown.
	vm := rc("azurerm_linux_virtual_machine.v", "azurerm_linux_virtual_machine", "azurerm", create,
		map[string]any{"size": "Standard_B1s", "location": "West Europe", "network_interface_ids": []any{"/subscriptions/x/nic"}}, nil)
	check(t, kindOf(t, planOf(vm), "azurerm_linux_virtual_machine.v"), map[string]any{"public_ip": nil, "_region": "westeurope"})
}

func TestModuleReferences(t *testing.T) {
	bucket := rc("module.site[0].aws_s3_bucket.b", "aws_s3_bucket", "aws", create, map[string]any{"bucket": "site", "id": nil}, map[string]any{"id": true})
	bucket["module_address"] = "module.site[0]"
	acl := rc("module.site[0].aws_s3_bucket_acl.a", "aws_s3_bucket_acl", "aws", create, map[string]any{"bucket": nil, "acl": "public-read-write"},
		map[string]any{"bucket": true})
	acl["module_address"] = "module.site[0]"
	plan := planOf(bucket, acl)
	plan["configuration"] = map[string]any{"root_module": map[string]any{"module_calls": map[string]any{
		"site": map[string]any{"module": map[string]any{"resources": []any{
			map[string]any{"address": "aws_s3_bucket_acl.a", "expressions": map[string]any{
				"bucket": map[string]any{"references": []any{"aws_s3_bucket.b.id", "aws_s3_bucket.b"}}}},
		}}}}}}
	check(t, kindOf(t, plan, "module.site[0].aws_s3_bucket.b"), map[string]any{"public_read": true, "public_write": true, "name": "site"})
}

func TestSensitiveValuesStayHidden(t *testing.T) {
	c := rc("aws_instance.s", "aws_instance", "aws", create,
		map[string]any{"instance_type": "t3.micro", "tags": map[string]any{"owner": "secret-team", "env": "prod"}}, nil)
	c["change"].(map[string]any)["after_sensitive"] = map[string]any{"tags": map[string]any{"owner": true}}
	got := kindOf(t, planOf(c), "aws_instance.s")
	check(t, got, map[string]any{"size": "t3.micro", "_tags": map[string]any{"env": "prod"}})
}
