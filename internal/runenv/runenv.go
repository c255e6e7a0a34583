// Package runenv names the environment variables Gantry sets in every run
// and keeps for itself: no stack or context variable, and no integration,
// may set them (a run must be able to trust them).
package runenv

import "strings"

// reservedPrefixes start the names of Gantry's own variables: the run's
// facts (GANTRY_RUN_ID, GANTRY_OIDC_TOKEN, ... and TF_VAR_gantry_*).
var reservedPrefixes = []string{"GANTRY_", "TF_VAR_gantry_"}

// reservedNames are the other variables Gantry sets that a run must be
// able to trust: the run's OIDC token under Spacelift's name. (The
// TF_VAR_spacelift_* facts may be overridden, as in Spacelift; OpenTofu's
// TF_* settings may be set, except the state backend's on a stack with
// managed state, which the worker ignores then.)
var reservedNames = []string{"SPACELIFT_OIDC_TOKEN"}

// Reserved says why a variable may not be named name, as "the reserved
// prefix P" or "the reserved name N" ("" when it may): name, or name
// without a stage prefix (ro_X and wo_X reach their stage as X), is one
// Gantry sets.
func Reserved(name string) string {
	for _, n := range []string{name, strings.TrimPrefix(strings.TrimPrefix(name, "ro_"), "wo_")} {
		for _, p := range reservedPrefixes {
			if strings.HasPrefix(n, p) {
				return "the reserved prefix " + p
			}
		}
		for _, r := range reservedNames {
			if n == r {
				return "the reserved name " + r
			}
		}
	}
	return ""
}
