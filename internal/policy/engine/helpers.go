package engine

import (
	"context"
	"fmt"
	"sync"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/rego"
	"github.com/open-policy-agent/opa/v1/types"
)

// Spacelift gives PLAN policies five aliases of parts of the input, used by
// name as if they were rules of the policy (e.g. `created_resources[r]`).
// Gantry defines them in a package of their own, helperPackage, and adds
// an import of each one a policy mentions, so that:
//
//   - a policy refers to them by name, as on Spacelift, and they are
//     computed only when used (once per evaluation);
//   - they are not rules of the policy's package, so they do not show in
//     Result.Values;
//   - a policy defining a rule (or function) of the same name keeps its
//     own: no import is added for that name, the policy's rule wins.
//
// Each is a set of entries of input.terraform.resource_changes:
//
//	affected_resources   actions include create, update or delete
//	created_resources    actions == ["create"]
//	deleted_resources    actions == ["delete"]
//	updated_resources    actions == ["update"]
//	recreated_resources  actions are create and delete, in either order
const helperFile = "gantry/plan_helpers.rego"

var helperPackage = ast.MustParseRef("data.gantry_internal.plan")

var helperNames = []string{
	"affected_resources", "created_resources", "deleted_resources", "recreated_resources", "updated_resources",
}

// The helpers call a built-in that computes them in Go and, when the
// policy is evaluated against an Input (not `with input as ...` in a test),
// shares them between every policy evaluated against that Input.
const helperSource = `package gantry_internal.plan

changes := object.get(input, ["terraform", "resource_changes"], [])

affected_resources := gantry.plan_resources("affected", changes)

created_resources := gantry.plan_resources("created", changes)

deleted_resources := gantry.plan_resources("deleted", changes)

updated_resources := gantry.plan_resources("updated", changes)

recreated_resources := gantry.plan_resources("recreated", changes)
`

// PlanHelpersRego returns the Rego module defining the PLAN helper aliases
// and its package (e.g. to run the same policies with plain `opa eval`).
func PlanHelpersRego() (pkg, module string) { return helperPackage.String(), helperSource }

// helperModule returns a freshly parsed helper module (compilers modify the
// modules they compile, so each gets its own).
func helperModule() *ast.Module {
	return ast.MustParseModuleWithOpts(helperSource, ast.ParserOptions{RegoVersion: ast.RegoV1})
}

// addHelperImports imports into mod each helper it mentions and does not
// define itself.
func addHelperImports(mod *ast.Module) {
	defined := map[string]bool{}
	for _, r := range mod.Rules {
		if ref := r.Head.Ref(); len(ref) > 0 {
			if v, ok := ref[0].Value.(ast.Var); ok {
				defined[string(v)] = true
			}
		}
	}
	for _, imp := range mod.Imports {
		defined[string(imp.Name())] = true
	}
	used := map[string]bool{}
	ast.WalkVars(mod, func(v ast.Var) bool {
		used[string(v)] = true
		return false
	})
	for _, name := range helperNames {
		if used[name] && !defined[name] {
			path := helperPackage.Append(ast.StringTerm(name))
			mod.Imports = append(mod.Imports, &ast.Import{Path: ast.NewTerm(path)})
		}
	}
}

// Kinds of helper sets, in helperNames order.
var helperKinds = []string{"affected", "created", "deleted", "recreated", "updated"}

const planResourcesName = "gantry.plan_resources"

var planResourcesDecl = types.NewFunction(
	types.Args(types.Named("kind", types.S), types.Named("changes", types.A)),
	types.Named("resources", types.NewSet(types.A)),
)

var planResourcesFunc = rego.Function2(
	&rego.Function{Name: planResourcesName, Decl: planResourcesDecl},
	func(bctx rego.BuiltinContext, kind, changes *ast.Term) (*ast.Term, error) {
		k, ok := kind.Value.(ast.String)
		idx := kindIndex(string(k))
		if !ok || idx < 0 {
			return nil, fmt.Errorf("%s: unknown kind %v", planResourcesName, kind)
		}
		arr, ok := changes.Value.(*ast.Array)
		if !ok {
			return ast.SetTerm(), nil
		}
		if hc, ok := bctx.Context.Value(helperCacheKey{}).(*helperCache); ok && hc != nil && hc.changes == arr {
			return hc.get(idx), nil
		}
		return ast.NewTerm(planResources(idx, arr)), nil
	},
)

func kindIndex(kind string) int {
	for i, k := range helperKinds {
		if k == kind {
			return i
		}
	}
	return -1
}

// helperCache holds the helper sets of one Input, computed on first use.
type helperCache struct {
	changes *ast.Array // input.terraform.resource_changes
	once    [5]sync.Once
	sets    [5]*ast.Term
}

type helperCacheKey struct{}

// newHelperCache returns the cache for input, or nil when it has no
// resource changes.
func newHelperCache(input ast.Value) *helperCache {
	obj, ok := input.(ast.Object)
	if !ok {
		return nil
	}
	v, err := obj.Find(ast.Ref{ast.StringTerm("terraform"), ast.StringTerm("resource_changes")})
	if err != nil {
		return nil
	}
	arr, ok := v.(*ast.Array)
	if !ok {
		return nil
	}
	return &helperCache{changes: arr}
}

func (hc *helperCache) get(idx int) *ast.Term {
	hc.once[idx].Do(func() { hc.sets[idx] = ast.NewTerm(planResources(idx, hc.changes)) })
	return hc.sets[idx]
}

// withHelpers makes the helper cache of in available to the built-in.
func withHelpers(ctx context.Context, hc *helperCache) context.Context {
	if hc == nil {
		return ctx
	}
	return context.WithValue(ctx, helperCacheKey{}, hc)
}

var (
	actionsRef = ast.Ref{ast.StringTerm("change"), ast.StringTerm("actions")}
	actCreate  = ast.String("create")
	actDelete  = ast.String("delete")
	actUpdate  = ast.String("update")
)

// planResources returns the set of resource changes of kind idx.
func planResources(idx int, changes *ast.Array) ast.Set {
	out := ast.NewSet()
	changes.Foreach(func(rc *ast.Term) {
		obj, ok := rc.Value.(ast.Object)
		if !ok {
			return
		}
		v, err := obj.Find(actionsRef)
		if err != nil {
			return
		}
		acts, ok := v.(*ast.Array)
		if ok && actionsMatch(helperKinds[idx], acts) {
			out.Add(rc)
		}
	})
	return out
}

func actionsMatch(kind string, acts *ast.Array) bool {
	var create, del, update, other bool
	acts.Foreach(func(t *ast.Term) {
		switch t.Value {
		case actCreate:
			create = true
		case actDelete:
			del = true
		case actUpdate:
			update = true
		default:
			other = true
		}
	})
	n := acts.Len()
	switch kind {
	case "affected":
		return create || del || update
	case "created":
		return n == 1 && create
	case "deleted":
		return n == 1 && del
	case "updated":
		return n == 1 && update
	case "recreated":
		return n == 2 && create && del && !other
	}
	return false
}
