package contexts

import (
	"strings"

	"github.com/gantry-iac/gantry/internal/errs"
)

// Hooks are shell commands run around the phases of a run, under
// Spacelift's names.
type Hooks struct {
	BeforeInit    []string `json:"before_init,omitempty"`
	AfterInit     []string `json:"after_init,omitempty"`
	BeforePlan    []string `json:"before_plan,omitempty"`
	AfterPlan     []string `json:"after_plan,omitempty"`
	BeforeApply   []string `json:"before_apply,omitempty"`
	AfterApply    []string `json:"after_apply,omitempty"`
	BeforeDestroy []string `json:"before_destroy,omitempty"`
	AfterDestroy  []string `json:"after_destroy,omitempty"`
	BeforePerform []string `json:"before_perform,omitempty"`
	AfterPerform  []string `json:"after_perform,omitempty"`
	AfterRun      []string `json:"after_run,omitempty"`
}

// Phases are the hook phases, in the order of a run.
var Phases = []string{"before_init", "after_init", "before_plan", "after_plan", "before_apply", "after_apply",
	"before_destroy", "after_destroy", "before_perform", "after_perform", "after_run"}

// Phase returns the list of commands of a phase, or nil for an unknown
// phase.
func (h *Hooks) Phase(phase string) *[]string {
	switch phase {
	case "before_init":
		return &h.BeforeInit
	case "after_init":
		return &h.AfterInit
	case "before_plan":
		return &h.BeforePlan
	case "after_plan":
		return &h.AfterPlan
	case "before_apply":
		return &h.BeforeApply
	case "after_apply":
		return &h.AfterApply
	case "before_destroy":
		return &h.BeforeDestroy
	case "after_destroy":
		return &h.AfterDestroy
	case "before_perform":
		return &h.BeforePerform
	case "after_perform":
		return &h.AfterPerform
	case "after_run":
		return &h.AfterRun
	}
	return nil
}

// Limits of hooks.
const (
	MaxHooksPerPhase = 50
	MaxHookCommand   = 8192
)

func (h *Hooks) validate() error {
	for _, p := range Phases {
		list := *h.Phase(p)
		if len(list) > MaxHooksPerPhase {
			return errs.E(errs.Invalid, "at most %d commands per hook phase (%s has %d)", MaxHooksPerPhase, p, len(list))
		}
		for _, c := range list {
			if strings.TrimSpace(c) == "" || len(c) > MaxHookCommand {
				return errs.E(errs.Invalid, "hook commands must be non-empty and at most %d bytes (%s)", MaxHookCommand, p)
			}
		}
	}
	return nil
}

// isBefore reports whether a phase runs before its step (after_run counts
// as an after phase).
func isBefore(phase string) bool { return strings.HasPrefix(phase, "before_") }
