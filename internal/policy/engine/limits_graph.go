package engine

import (
	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/topdown"
	"github.com/open-policy-agent/opa/v1/topdown/builtins"
)

// reachablePaths is OPA's graph.reachable_paths (v1.22.3, topdown/reachable.go,
// Apache License 2.0) counting what it allocates: a graph can have
// exponentially many paths, all built in one call.
func reachablePaths(bctx topdown.BuiltinContext, operands []*ast.Term, iter func(*ast.Term) error) error {
	graph, err := builtins.ObjectOperand(operands[0].Value, 1)
	if err != nil {
		return err
	}
	var queue []*ast.Term
	switch initial := operands[1].Value.(type) {
	case *ast.Array:
		initial.Foreach(func(t *ast.Term) { queue = append(queue, t) })
	case ast.Set:
		queue = append(queue, initial.Slice()...)
	default:
		return builtins.NewOperandTypeErr(2, initial, "{array, set}")
	}
	pb := pathBuilder{graph: graph, result: ast.NewSet()}
	for _, node := range queue {
		edges := graph.Get(node)
		if edges == nil {
			continue
		}
		if edgeCount(edges.Value) == 0 {
			pb.add([]*ast.Term{node})
			continue
		}
		eachVertex(edges, func(neighbor *ast.Term) {
			pb.build(neighbor, []*ast.Term{node}, ast.NewSet(node))
		})
	}
	if pb.over {
		return overCall(bctx, ast.ReachablePathsBuiltin.Name)
	}
	if err := charge(bctx, ast.ReachablePathsBuiltin.Name, pb.used); err != nil {
		return err
	}
	return iter(ast.NewTerm(pb.result))
}

// pathBuilder collects the paths of graph, stopping once they take more
// than maxCallBytes.
type pathBuilder struct {
	graph  ast.Object
	result ast.Set
	used   int64
	over   bool
}

func (pb *pathBuilder) spend(n int64) bool {
	pb.used += n
	pb.over = pb.over || pb.used > maxCallBytes
	return !pb.over
}

func (pb *pathBuilder) add(path []*ast.Term) {
	if pb.spend(int64(len(path))*slotCost + termCost) {
		pb.result.Add(ast.ArrayTerm(path...))
	}
}

func (pb *pathBuilder) build(root *ast.Term, path []*ast.Term, reached ast.Set) {
	if !pb.spend(int64(len(path)+reached.Len()+1) * slotCost) {
		return
	}
	edges := pb.graph.Get(root)
	if edges == nil { // not a node of the graph: the path ends before it
		pb.add(path)
		return
	}
	path = append(path, root)
	if edgeCount(edges.Value) == 0 {
		pb.add(path)
		return
	}
	reached = reached.Copy()
	reached.Add(root)
	eachVertex(edges, func(neighbor *ast.Term) {
		if reached.Contains(neighbor) { // a cycle: the path ends here
			pb.add(path)
		} else {
			pb.build(neighbor, append([]*ast.Term(nil), path...), reached)
		}
	})
}

// edgeCount is the number of edges of an array or set, 0 for anything else.
func edgeCount(v ast.Value) int {
	switch x := v.(type) {
	case *ast.Array:
		return x.Len()
	case ast.Set:
		return x.Len()
	}
	return 0
}

// eachVertex calls f on each element of an array or set of edges.
func eachVertex(edges *ast.Term, f func(*ast.Term)) {
	for _, t := range elems(edges.Value) {
		f(t)
	}
}
