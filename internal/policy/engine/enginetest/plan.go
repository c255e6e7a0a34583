// Package enginetest generates realistic PLAN policy inputs and policies
// for tests and benchmarks of the policy engine (and of its comparison with
// `opa eval`).
package enginetest

import (
	"fmt"
	"math/rand/v2"
)

// Plan returns a PLAN policy input (as decoded JSON) with n resource
// changes: a mix of AWS resources with realistic attributes and actions,
// the same for the same n.
func Plan(n int) map[string]any {
	rng := rand.New(rand.NewPCG(uint64(n), 42))
	changes := make([]any, 0, n)
	for i := range n {
		changes = append(changes, resourceChange(rng, i))
	}
	return map[string]any{
		"spacelift": map[string]any{
			"commit": map[string]any{
				"author": "alice", "branch": "main", "created_at": 1718000000000000000,
				"hash": "4f1c2a9be0d7c33a1d5b7e9f0a1b2c3d4e5f6a7b", "message": "Scale the fleet",
			},
			"request": map[string]any{"timestamp_ns": 1718000100000000000},
			"run": map[string]any{
				"id": "run-01J0000000000000000000000", "type": "PROPOSED", "state": "PLANNING",
				"branch": "main", "drift_detection": false, "flags": []any{},
			},
			"stack": map[string]any{
				"id": "prod-network", "name": "Production network", "branch": "main",
				"labels": []any{"env:production", "team:platform"}, "autodeploy": false,
				"administrative": false, "repository": "acme/infra", "state": "PLANNING",
			},
		},
		"terraform": map[string]any{
			"format_version": "1.2", "terraform_version": "1.8.2",
			"resource_changes": changes,
		},
	}
}

var (
	instanceTypes = []string{"t3.micro", "t3.small", "t3.medium", "m5.large", "m5.xlarge", "c5.2xlarge", "r5.4xlarge", "p3.8xlarge"}
	environments  = []string{"production", "staging", "dev", ""}
	teams         = []string{"platform", "payments", "search", "data", ""}
	cidrs         = []string{"10.0.0.0/8", "172.16.0.0/12", "192.168.10.0/24", "0.0.0.0/0"}
	runtimes      = []string{"python3.12", "nodejs20.x", "go1.x", "python3.7", "java21"}
)

func pick[T any](rng *rand.Rand, s []T) T { return s[rng.IntN(len(s))] }

func actions(rng *rand.Rand) []any {
	switch p := rng.IntN(100); {
	case p < 65:
		return []any{"create"}
	case p < 82:
		return []any{"update"}
	case p < 88:
		return []any{"delete"}
	case p < 93:
		return []any{"delete", "create"}
	default:
		return []any{"no-op"}
	}
}

func tags(rng *rand.Rand, i int) map[string]any {
	t := map[string]any{"Name": fmt.Sprintf("res-%05d", i), "ManagedBy": "opentofu"}
	if e := pick(rng, environments); e != "" {
		t["Environment"] = e
	}
	if o := pick(rng, teams); o != "" {
		t["Owner"] = o
		t["CostCenter"] = fmt.Sprintf("cc-%d", 100+rng.IntN(8))
	}
	return t
}

func resourceChange(rng *rand.Rand, i int) map[string]any {
	var typ string
	var after map[string]any
	switch k := rng.IntN(100); {
	case k < 30:
		typ, after = "aws_instance", instance(rng, i)
	case k < 50:
		typ, after = "aws_s3_bucket", bucket(rng, i)
	case k < 75:
		typ, after = "aws_security_group_rule", sgRule(rng, i)
	case k < 85:
		typ, after = "aws_db_instance", database(rng, i)
	case k < 95:
		typ, after = "aws_lambda_function", lambda(rng, i)
	default:
		typ, after = "aws_iam_access_key", map[string]any{"user": fmt.Sprintf("svc-%d", i), "status": "Active"}
	}
	acts := actions(rng)
	name := fmt.Sprintf("r%d", i)
	module := fmt.Sprintf("module.service_%02d", i%40)
	before := any(nil)
	if acts[0] != "create" {
		b := make(map[string]any, len(after))
		for k, v := range after {
			b[k] = v
		}
		b["id"] = fmt.Sprintf("id-%08x", rng.Uint32())
		before = b
	}
	change := map[string]any{"actions": acts, "before": before, "after": any(after), "after_unknown": map[string]any{"id": true, "arn": true}}
	if acts[0] == "delete" && len(acts) == 1 {
		change["after"] = nil
	}
	return map[string]any{
		"address":        fmt.Sprintf("%s.%s.%s", module, typ, name),
		"module_address": module,
		"mode":           "managed",
		"type":           typ,
		"name":           name,
		"provider_name":  "registry.opentofu.org/hashicorp/aws",
		"change":         change,
	}
}

func instance(rng *rand.Rand, i int) map[string]any {
	return map[string]any{
		"ami":                         fmt.Sprintf("ami-%08x", rng.Uint32()),
		"instance_type":               pick(rng, instanceTypes),
		"associate_public_ip_address": rng.IntN(10) == 0,
		"monitoring":                  rng.IntN(2) == 0,
		"subnet_id":                   fmt.Sprintf("subnet-%06x", rng.IntN(1<<24)),
		"tags":                        tags(rng, i),
		"root_block_device": []any{map[string]any{
			"volume_size": 20 + rng.IntN(200), "volume_type": "gp3", "encrypted": rng.IntN(8) != 0,
		}},
	}
}

func bucket(rng *rand.Rand, i int) map[string]any {
	acl := "private"
	if rng.IntN(12) == 0 {
		acl = "public-read"
	}
	return map[string]any{
		"bucket":        fmt.Sprintf("acme-%s-%05d", pick(rng, teams), i),
		"acl":           acl,
		"force_destroy": rng.IntN(20) == 0,
		"versioning":    []any{map[string]any{"enabled": rng.IntN(5) != 0}},
		"tags":          tags(rng, i),
	}
}

func sgRule(rng *rand.Rand, i int) map[string]any {
	port := pick(rng, []int{22, 80, 443, 3306, 5432, 8080})
	from, to := port, port
	if rng.IntN(40) == 0 {
		from, to = 0, 65535
	}
	return map[string]any{
		"type":              pick(rng, []string{"ingress", "ingress", "egress"}),
		"from_port":         from,
		"to_port":           to,
		"protocol":          "tcp",
		"cidr_blocks":       []any{pick(rng, cidrs)},
		"security_group_id": fmt.Sprintf("sg-%06x", i),
		"description":       fmt.Sprintf("rule %d", i),
	}
}

func database(rng *rand.Rand, i int) map[string]any {
	return map[string]any{
		"identifier":          fmt.Sprintf("db-%05d", i),
		"engine":              pick(rng, []string{"postgres", "mysql"}),
		"instance_class":      pick(rng, []string{"db.t3.micro", "db.m5.large", "db.r5.2xlarge"}),
		"allocated_storage":   20 + rng.IntN(500),
		"storage_encrypted":   rng.IntN(6) != 0,
		"publicly_accessible": rng.IntN(15) == 0,
		"deletion_protection": rng.IntN(2) == 0,
		"tags":                tags(rng, i),
	}
}

func lambda(rng *rand.Rand, i int) map[string]any {
	return map[string]any{
		"function_name": fmt.Sprintf("fn-%05d", i),
		"runtime":       pick(rng, runtimes),
		"memory_size":   pick(rng, []int{128, 256, 512, 1024}),
		"timeout":       rng.IntN(900),
		"tags":          tags(rng, i),
	}
}
