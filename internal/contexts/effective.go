package contexts

import (
	"context"
	"slices"
	"sort"

	"github.com/gantry-iac/gantry/internal/stack"
)

// Sources of effective values.
const (
	SourceStack   = "stack"
	SourceContext = "context"
)

// EffectiveVar is a variable a run of a stack gets, and where it comes from.
type EffectiveVar struct {
	Name      string
	Value     string // empty for secrets unless revealed
	Secret    bool
	Source    string // SourceStack or SourceContext
	ContextID string // the context, for SourceContext
	Checksum  string
	// Rank orders the sources: 0 the stack, then the contexts in the order
	// they apply (lower wins). Stage variables (ro_X, wo_X) compete with X
	// by rank, stage by stage.
	Rank int
}

// EffectiveFile is a file mounted into the workspace of a stack's runs.
type EffectiveFile struct {
	Path      string
	Content   []byte // only when revealed
	Size      int64
	Secret    bool
	Source    string // always SourceContext for now
	ContextID string
	Checksum  string
}

// Effective is what a run of a stack sees: variables and files (the stack's
// own win, then explicitly attached contexts by priority, lowest first,
// then auto-attached ones by id), and the merged hooks.
type Effective struct {
	Env      []EffectiveVar
	Files    []EffectiveFile
	Hooks    Hooks
	Contexts []Applied
}

// Effective computes the effective environment of a stack. With reveal,
// secret values and file contents are included (for jobs only).
func (s *Service) Effective(ctx context.Context, stackID string, reveal bool) (Effective, error) {
	st, err := s.stacks.Get(ctx, stackID)
	if err != nil {
		return Effective{}, err
	}
	return s.EffectiveFor(ctx, st, reveal)
}

// EffectiveFor is Effective for a stack the caller has read.
func (s *Service) EffectiveFor(ctx context.Context, st stack.Stack, reveal bool) (Effective, error) {
	var out Effective
	own, err := s.stacks.EnvForJob(ctx, st.ID)
	if err != nil {
		return out, err
	}
	applied, err := s.ForStack(ctx, st)
	if err != nil {
		return out, err
	}
	out.Contexts = applied
	vars := map[string]EffectiveVar{}
	for _, v := range own {
		vars[v.Name] = EffectiveVar{Name: v.Name, Value: v.Value, Secret: v.Secret, Source: SourceStack, Checksum: Checksum([]byte(v.Value))}
	}
	files := map[string]EffectiveFile{}
	for i, a := range applied {
		env, err := s.env(ctx, a.Context.ID, true)
		if err != nil {
			return out, err
		}
		for _, v := range env {
			if _, taken := vars[v.Name]; !taken {
				vars[v.Name] = EffectiveVar{Name: v.Name, Value: v.Value, Secret: v.Secret, Source: SourceContext, ContextID: a.Context.ID, Checksum: v.Checksum, Rank: i + 1}
			}
		}
		fs, err := s.files(ctx, a.Context.ID, true)
		if err != nil {
			return out, err
		}
		for _, f := range fs {
			if _, taken := files[f.Path]; !taken {
				files[f.Path] = EffectiveFile{Path: f.Path, Content: f.Content, Size: f.Size, Secret: f.Secret,
					Source: SourceContext, ContextID: a.Context.ID, Checksum: f.Checksum}
			}
		}
	}
	out.Env = make([]EffectiveVar, 0, len(vars))
	for _, v := range vars {
		if v.Secret && !reveal {
			v.Value = ""
		}
		out.Env = append(out.Env, v)
	}
	sort.Slice(out.Env, func(i, j int) bool { return out.Env[i].Name < out.Env[j].Name })
	out.Files = make([]EffectiveFile, 0, len(files))
	for _, f := range files {
		if !reveal {
			f.Content = nil
		}
		out.Files = append(out.Files, f)
	}
	sort.Slice(out.Files, func(i, j int) bool { return out.Files[i].Path < out.Files[j].Path })
	out.Hooks = MergeHooks(st.Hooks, applied)
	return out, nil
}

// MergeHooks orders the hooks of a stack and of the contexts that apply to
// it as Spacelift does. Before a phase: explicitly attached contexts by
// priority (lowest first), auto-attached contexts in reverse alphabetical
// order, then the stack's. After a phase (and after_run): the stack's,
// auto-attached contexts alphabetically, then explicitly attached contexts
// by reverse priority. applied must be in ForStack's order.
func MergeHooks(own stack.Hooks, applied []Applied) Hooks {
	var manual, auto []Applied
	for _, a := range applied {
		if a.IsExplicit() {
			manual = append(manual, a)
		} else {
			auto = append(auto, a)
		}
	}
	stackHooks := Hooks{BeforeInit: own.BeforeInit, AfterInit: own.AfterInit, BeforePlan: own.BeforePlan,
		AfterPlan: own.AfterPlan, BeforeApply: own.BeforeApply, AfterApply: own.AfterApply}
	var out Hooks
	for _, p := range Phases {
		dst := out.Phase(p)
		var order []Applied
		if isBefore(p) {
			order = append(slices.Clone(manual), reversed(auto)...)
		} else {
			order = append(slices.Clone(auto), reversed(manual)...)
		}
		if !isBefore(p) {
			*dst = append(*dst, *stackHooks.Phase(p)...)
		}
		for _, a := range order {
			*dst = append(*dst, *a.Context.Hooks.Phase(p)...)
		}
		if isBefore(p) {
			*dst = append(*dst, *stackHooks.Phase(p)...)
		}
	}
	return out
}

func reversed(l []Applied) []Applied {
	out := slices.Clone(l)
	slices.Reverse(out)
	return out
}
