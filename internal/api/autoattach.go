package api

import (
	"fmt"
	"slices"
	"strings"

	"github.com/gantry-iac/gantry/internal/auth"
	"github.com/gantry-iac/gantry/internal/errs"
)

// autoattachPrefix marks the labels of contexts, policies and integrations
// that attach them to stacks by label (autoattach:* to every stack that
// sees their space).
const autoattachPrefix = "autoattach:"

// autoattachLabels returns the autoattach labels of l as they will be
// stored (labels.Normalize trims them), sorted, without duplicates.
func autoattachLabels(l []string) []string {
	var out []string
	for _, x := range l {
		if x = strings.TrimSpace(x); strings.HasPrefix(x, autoattachPrefix) {
			out = append(out, x)
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// autoattachAllowed refuses a change of the autoattach labels of a
// context, policy or integration (kind and id, in spaceID) from before to
// after (before nil for a new one) unless p holds action in spaceID: the
// action that attaching it to a stack by hand takes (stack:update for
// contexts and policies, integration:attach for integrations). Such a
// label attaches it to, or detaches it from, stacks of that space and of
// the spaces under it that inherit from it, which a binding in spaceID
// covers. Other label changes need nothing more.
func autoattachAllowed(p auth.Principal, action, kind, id, spaceID string, before, after []string) error {
	if slices.Equal(autoattachLabels(before), autoattachLabels(after)) {
		return nil
	}
	spaceID = orRoot(spaceID)
	if auth.Authorize(p, action, spaceID) == nil {
		return nil
	}
	changed := symmetricDifference(autoattachLabels(before), autoattachLabels(after))
	return &errs.Error{Kind: errs.Forbidden,
		Message: fmt.Sprintf("%s may not set or remove the autoattach labels %s of %s %s in space %s (they attach it to the stacks carrying the label, every stack for autoattach:*, in the spaces that see it): missing action %s",
			p, strings.Join(changed, ", "), kind, id, spaceID, action),
		Detail: auth.Denial{MissingAction: action, Space: spaceID}}
}

// symmetricDifference returns the labels in exactly one of a and b
// (sorted, without duplicates), the autoattach labels a change sets or
// removes.
func symmetricDifference(a, b []string) []string {
	var out []string
	for _, x := range a {
		if !slices.Contains(b, x) {
			out = append(out, x)
		}
	}
	for _, x := range b {
		if !slices.Contains(a, x) {
			out = append(out, x)
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}
