package library

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/gantry-iac/gantry/internal/policy/cloud"
	"github.com/gantry-iac/gantry/internal/policy/engine"
)

var clouds = []string{"aws", "azure", "google"}

// fixturePlan reads a plan fixture of the cloud package.
func fixturePlan(t *testing.T, name string) m {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "cloud", "testdata", name+".json"))
	if err != nil {
		t.Fatal(err)
	}
	var p m
	if err := json.Unmarshal(b, &p); err != nil {
		t.Fatal(err)
	}
	return p
}

func spacelift() m {
	return m{
		"run":   m{"id": "run-01", "type": "PROPOSED", "state": "PLANNING", "drift_detection": false, "flags": []any{}},
		"stack": m{"id": "web", "labels": []any{}, "space": m{"id": "root", "labels": []any{}}},
	}
}

// planInput is a plan policy input as Gantry builds it.
func planInput(plan m) m {
	return m{"spacelift": spacelift(), "terraform": plan, "gantry": m{"resources": cloud.Normalize(plan)}}
}

// resourcesInput is a plan policy input with hand-written resources.
func resourcesInput(resources ...m) m {
	list := make([]any, len(resources))
	for i, r := range resources {
		list[i] = r
	}
	return m{"spacelift": spacelift(), "terraform": m{}, "gantry": m{"resources": list}}
}

func resource(address, cloud, kind string, actions []any, fields m) m {
	r := m{"address": address, "type": "x", "provider": cloud, "cloud": cloud, "kind": kind, "actions": actions,
		"region": "", "tags": m{}, "taggable": false}
	if fields != nil {
		r[kind] = fields
	}
	return r
}

var create, del = []any{"create"}, []any{"delete"}

func planCases(t *testing.T) []testCase {
	gantryPolicies := []string{
		"plan-no-public-storage", "plan-no-open-admin-ports", "plan-no-admin-grants", "plan-no-static-credentials",
		"plan-private-encrypted-databases", "plan-allowed-instance-sizes", "plan-allowed-regions", "plan-required-tags",
		"plan-protect-resources",
	}
	var cases []testCase
	for _, p := range gantryPolicies {
		for _, c := range clouds {
			cases = append(cases,
				testCase{p, c + " risky", true, planInput(fixturePlan(t, c+"_risky")), denies},
				testCase{p, c + " safe", false, planInput(fixturePlan(t, c+"_safe")), allows})
		}
	}
	for _, c := range clouds {
		cases = append(cases,
			testCase{"plan-warn-public-instances", c + " risky", true, planInput(fixturePlan(t, c+"_risky")), warns},
			testCase{"plan-warn-public-instances", c + " safe", false, planInput(fixturePlan(t, c+"_safe")), allows})
	}
	var many []m
	for i := 0; i < 11; i++ {
		many = append(many, resource("aws_instance.web["+string(rune('a'+i))+"]", "aws", "other", del, nil))
	}
	unencrypted := resource("aws_db_instance.legacy", "aws", "database", create,
		m{"public_access": false, "encrypted": false, "backups": false})
	unknownDB := resource("aws_db_instance.later", "aws", "database", create,
		m{"public_access": nil, "encrypted": nil, "backups": nil})
	listed := resource("aws_kms_key.state", "aws", "other", []any{"delete", "create"}, nil)
	wildcard := resource("aws_iam_policy.all_s3", "aws", "identity_grant", create,
		m{"principal": "", "role": "all-s3", "wildcard": true, "owner": false, "static_key": false})
	return append(cases,
		testCase{"plan-blast-radius", "11 deletes", true, resourcesInput(many...), warns},
		testCase{"plan-blast-radius", "10 deletes", false, resourcesInput(many[:10]...), allows},
		testCase{"plan-blast-radius", "aws risky fixture", false, planInput(fixturePlan(t, "aws_risky")), allows},
		testCase{"plan-private-encrypted-databases", "unencrypted", true, resourcesInput(unencrypted),
			func(d engine.Decision) bool {
				return denyContains("not be encrypted")(d) && len(d.Warn) == 1
			}},
		testCase{"plan-private-encrypted-databases", "unknown values", false, resourcesInput(unknownDB), allows},
		testCase{"plan-protect-resources", "listed address replaced", true, resourcesInput(listed), denyContains("aws_kms_key.state")},
		testCase{"plan-no-admin-grants", "wildcard policy", true, resourcesInput(wildcard), denyContains("wildcard permissions to whoever")},
	)
}
