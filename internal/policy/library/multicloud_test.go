package library

import (
	"reflect"
	"sort"
	"strings"
	"testing"
)

// reasons strips the "<address>: " prefix of messages, leaving what a rule
// says about a resource whatever its cloud.
func reasons(msgs []string) []string {
	set := map[string]bool{}
	for _, msg := range msgs {
		if _, reason, ok := strings.Cut(msg, ": "); ok {
			msg = reason
		}
		set[msg] = true
	}
	out := make([]string, 0, len(set))
	for s := range set {
		out = append(out, s)
	}
	sort.Strings(out)
	return out
}

// TestSameRuleEveryCloud: the gantry.resources policies say the same thing
// about the AWS, Azure and Google variants of the same configuration.
func TestSameRuleEveryCloud(t *testing.T) {
	want := map[string][]string{
		"plan-no-public-storage":           {"storage bucket would be publicly readable"},
		"plan-no-open-admin-ports":         {"admin port 22 is open to the internet"},
		"plan-no-admin-grants":             {"grants owner-level access to " + "*"},
		"plan-no-static-credentials":       {"creates a static cloud credential; use a cloud integration (OIDC) instead"},
		"plan-private-encrypted-databases": {"database would be reachable from the internet"},
		"plan-required-tags":               {`missing required tag "cost-center"`, `missing required tag "owner"`},
		"plan-protect-resources":           {"resource is protected and must not be destroyed"},
		"plan-warn-public-instances":       {"instance gets a public IP address"},
		"plan-allowed-instance-sizes":      nil, // the size and cloud are in the message
		"plan-allowed-regions":             nil, // the region and cloud are in the message
	}
	for policy, reasonsWant := range want {
		t.Run(policy, func(t *testing.T) {
			for _, fixture := range []string{"risky", "safe"} {
				var first []string
				for i, c := range clouds {
					d := eval(t, policy, planInput(fixturePlan(t, c+"_"+fixture))).Decision
					got := reasons(append(d.Deny, d.Warn...))
					if fixture == "safe" && len(got) != 0 || fixture == "risky" && len(got) == 0 {
						t.Errorf("%s %s: %v", c, fixture, got)
					}
					if reasonsWant == nil || fixture == "safe" {
						continue
					}
					got = mask(got)
					if i == 0 {
						first = got
						if !reflect.DeepEqual(got, mask(reasonsWant)) {
							t.Errorf("%s: got %q, want %q", c, got, reasonsWant)
						}
					} else if !reflect.DeepEqual(got, first) {
						t.Errorf("%s differs from aws: %q vs %q", c, got, first)
					}
				}
			}
		})
	}
}

// mask hides who receives a grant, which differs between clouds.
func mask(rs []string) []string {
	out := make([]string, len(rs))
	for i, r := range rs {
		if before, _, ok := strings.Cut(r, " access to "); ok {
			r = before + " access to *"
		}
		out[i] = r
	}
	return out
}

// TestRiskyResourcesOfEveryKind: each risky fixture trips the policies of
// every kind at the same resources (by kind).
func TestRiskyResourcesOfEveryKind(t *testing.T) {
	policies := map[string]string{
		"plan-no-public-storage":           "storage_bucket",
		"plan-no-open-admin-ports":         "network_rule",
		"plan-private-encrypted-databases": "database",
		"plan-allowed-instance-sizes":      "compute_instance",
	}
	for policy, kind := range policies {
		for _, c := range clouds {
			plan := planInput(fixturePlan(t, c+"_risky"))
			byAddr := map[string]string{}
			for _, r := range plan["gantry"].(m)["resources"].([]any) {
				e := r.(map[string]any)
				byAddr[e["address"].(string)] = e["kind"].(string)
			}
			for _, msg := range eval(t, policy, plan).Decision.Deny {
				addr, _, _ := strings.Cut(msg, ": ")
				if byAddr[addr] != kind {
					t.Errorf("%s on %s: %q is about a %q", policy, c, msg, byAddr[addr])
				}
			}
		}
	}
}
