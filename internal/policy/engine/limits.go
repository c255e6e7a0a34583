package engine

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"unicode/utf8"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/topdown"
)

// OPA bounds an evaluation by time only, and a built-in call allocates all
// its result at once: a policy whose rules each concat 16 copies of the
// previous rule's string asks for 8 GiB at the eighth rule, and the
// process dies of it ("fatal error: out of memory"), however short the
// timeout. Gantry therefore bounds memory too:
//
//   - every built-in whose result can be much larger than its arguments is
//     replaced by a wrapper (for the whole process: Gantry evaluates
//     nothing else with OPA) that computes an upper bound of what the
//     call would allocate from its arguments, before running it, and
//     refuses the call when it is over maxCallBytes;
//   - what those calls allocate is added up per evaluation, which fails
//     once the sum passes maxEvalBytes (a loop of calls each under the
//     first limit);
//   - arithmetic results are checked like input numbers (checkNumber), so
//     squaring a number again and again cannot build one of gigabytes;
//   - the values kept from an evaluation (Result.Values, shown by
//     simulate and stored in samples) and the rules Gantry reads are
//     bounded in Eval (see keptValues and checkDecisionSize).
//
// A refused call stops the evaluation with an error wrapping ErrTooLarge:
// the decision fails closed, whether or not built-in errors are strict.
//
// The evaluator's own work (comprehensions, sets built rule by rule) is
// bounded by the timeout only.
var (
	// maxCallBytes bounds what one built-in call may allocate.
	maxCallBytes int64 = 16 << 20
	// maxEvalBytes bounds what the calls of one evaluation allocate together.
	maxEvalBytes int64 = 512 << 20
)

// Costs, in bytes, of the parts of a value in memory (measured on OPA's
// terms: about 50 bytes for a small number or string in an array).
const (
	termCost = 64 // a new term: a number, a string, an array...
	slotCost = 16 // one more element of an array or set, its term shared
)

// ErrTooLarge is wrapped by the error of an evaluation stopped because it
// would take more memory than allowed.
var ErrTooLarge = errors.New("policy evaluation over its memory limit")

// meter adds up what the bounded built-ins of one evaluation allocate. One
// evaluation runs on one goroutine: no lock.
type meter struct{ used int64 }

type meterKey struct{}

// withMeter gives the evaluation run with ctx a meter of its own.
func withMeter(ctx context.Context) context.Context {
	return context.WithValue(ctx, meterKey{}, &meter{})
}

// charge adds n bytes to the meter of bctx's evaluation (none when the
// policy runs outside Eval, as in RunTests), or refuses them.
func charge(bctx topdown.BuiltinContext, name string, n int64) error {
	if n <= 0 || bctx.Context == nil {
		return nil
	}
	m, ok := bctx.Context.Value(meterKey{}).(*meter)
	if !ok {
		return nil
	}
	m.used += n
	if m.used > maxEvalBytes {
		return limitError(bctx, fmt.Sprintf("%s: the built-in calls of this evaluation would take over %s together (the most one evaluation may take)",
			name, byteSize(maxEvalBytes)), ErrTooLarge)
	}
	return nil
}

// limitError stops the evaluation: an error returned in a topdown.Halt is
// not turned into an undefined result, even when built-in errors are not
// strict.
func limitError(bctx topdown.BuiltinContext, msg string, cause error) error {
	e := &topdown.Error{Code: topdown.BuiltinErr, Message: msg, Location: bctx.Location}
	return topdown.Halt{Err: e.Wrap(cause)}
}

func overCall(bctx topdown.BuiltinContext, name string) error {
	return limitError(bctx, fmt.Sprintf("%s: result over %s (the most one built-in call may return)", name, byteSize(maxCallBytes)), ErrTooLarge)
}

// byteSize writes n bytes for people: "16 MiB", "1 KiB", "100 bytes".
func byteSize(n int64) string {
	switch {
	case n >= 1<<20 && n%(1<<20) == 0:
		return fmt.Sprintf("%d MiB", n>>20)
	case n >= 1<<10 && n%(1<<10) == 0:
		return fmt.Sprintf("%d KiB", n>>10)
	}
	return fmt.Sprintf("%d bytes", n)
}

// limit says how one built-in is bounded.
type limit struct {
	// before returns an upper bound of the bytes the call allocates, from
	// its arguments. It may stop counting once past most: any value over
	// most refuses the call. Arguments of the wrong type count 0: the
	// built-in reports them.
	before func(args []*ast.Term, most int64) int64
	// refuse refuses arguments that would make a number too large to
	// compute with.
	refuse func(args []*ast.Term) error
	// each checks one output of the call and returns what it costs.
	each func(out *ast.Term, most int64) (int64, error)
	// number: the output, when a number, must be one checkNumber accepts.
	number bool
}

// limited wraps built-in f (named name, of arity arguments) with l.
func limited(name string, arity int, f topdown.BuiltinFunc, l limit) topdown.BuiltinFunc {
	return func(bctx topdown.BuiltinContext, operands []*ast.Term, iter func(*ast.Term) error) error {
		args := operands // without the output term the evaluator may add
		if len(args) > arity {
			args = args[:arity]
		}
		if l.before != nil {
			n := l.before(args, maxCallBytes)
			if n > maxCallBytes {
				return overCall(bctx, name)
			}
			if err := charge(bctx, name, n); err != nil {
				return err
			}
		}
		if l.refuse != nil {
			if err := l.refuse(args); err != nil {
				return limitError(bctx, name+": "+err.Error(), ErrTooLarge)
			}
		}
		if l.each == nil && !l.number {
			return f(bctx, operands, iter)
		}
		return f(bctx, operands, func(out *ast.Term) error {
			if l.number {
				if n, ok := out.Value.(ast.Number); ok {
					if err := checkNumber(string(n)); err != nil {
						return limitError(bctx, name+": result: "+err.Error(), ErrTooLarge)
					}
				}
			}
			if l.each != nil {
				n, err := l.each(out, maxCallBytes)
				if err != nil {
					return limitError(bctx, name+": "+err.Error(), ErrTooLarge)
				}
				if n > maxCallBytes {
					return overCall(bctx, name)
				}
				if err := charge(bctx, name, n); err != nil {
					return err
				}
			}
			return iter(out)
		})
	}
}

// installLimits replaces OPA's implementation of every built-in of limits
// with its bounded wrapper, once per process.
func installLimits() {
	opaReachablePaths = topdown.GetBuiltin(ast.ReachablePathsBuiltin.Name)
	for name, l := range limits {
		f := topdown.GetBuiltin(name)
		b, ok := ast.BuiltinMap[name]
		if f == nil || !ok {
			panic("engine: no built-in " + name + " to bound")
		}
		if l.before != nil || l.each != nil {
			// The evaluator gives a context (where the meter is) only to
			// built-ins that do not say they can do without.
			b.CanSkipBctx = false
		}
		topdown.RegisterBuiltinFunc(name, limited(name, b.Decl.Arity(), f, l))
	}
	ast.ReachablePathsBuiltin.CanSkipBctx = false
	topdown.RegisterBuiltinFunc(ast.ReachablePathsBuiltin.Name, reachablePaths)
}

func init() { installLimits() }

// opaReachablePaths is OPA's graph.reachable_paths, replaced by
// reachablePaths (tests compare them).
var opaReachablePaths topdown.BuiltinFunc

// size describes a value as it would be written out.
type size struct {
	text  int64 // length written as JSON or in Rego syntax (the longer), escapes included
	terms int64 // terms: every scalar, array, set and object, object keys too
	depth int64 // nesting
}

// bytes is an estimate of the memory a copy of the value takes.
func (s size) bytes() int64 { return s.text + s.terms*termCost }

// sizeOf measures v; a term v holds twice counts twice. It stops counting
// once the text or the bytes pass most.
func sizeOf(v ast.Value, most int64) size {
	w := sizer{most: most}
	w.walk(v, 1)
	return w.s
}

type sizer struct {
	s    size
	most int64
}

var errStop = errors.New("stop")

func (w *sizer) over() bool { return w.s.text > w.most || w.s.terms*termCost > w.most }

func (w *sizer) walk(v ast.Value, depth int64) {
	w.s.terms++
	w.s.depth = max(w.s.depth, depth)
	switch x := v.(type) {
	case ast.String:
		w.s.text += quotedLen(string(x))
	case ast.Number:
		w.s.text += int64(len(x))
	case ast.Boolean:
		w.s.text += 5
	case ast.Null:
		w.s.text += 4
	case *ast.Array:
		w.s.text += 2
		for i := 0; i < x.Len() && !w.over(); i++ {
			w.s.text += 2
			w.walk(x.Elem(i).Value, depth+1)
		}
	case ast.Set:
		w.s.text += 5 // set()
		_ = x.Iter(func(t *ast.Term) error {
			w.s.text += 2
			w.walk(t.Value, depth+1)
			if w.over() {
				return errStop
			}
			return nil
		})
	case ast.Object:
		w.s.text += 2
		_ = x.Iter(func(k, t *ast.Term) error {
			w.s.text += 4
			w.walk(k.Value, depth+1)
			w.walk(t.Value, depth+1)
			if w.over() {
				return errStop
			}
			return nil
		})
	default:
		w.s.text += int64(len(v.String()))
	}
}

// quotedLen is an upper bound of the length of s quoted as a JSON string
// (encoding/json escapes <, > and &, and writes an invalid byte as
// \ufffd) or as a Go string (strconv.Quote, as Rego prints strings).
func quotedLen(s string) int64 {
	n := int64(len(s)) + 2
	high := int64(2) // a valid non-printable rune: at most \uXXXX or \UXXXXXXXX for its 2 to 4 bytes
	if !utf8.ValidString(s) {
		high = 5 // an invalid byte: \ufffd
	}
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c < 0x20 || c == 0x7f || c == '<' || c == '>' || c == '&':
			n += 5
		case c == '"' || c == '\\':
			n++
		case c >= 0x80:
			n += high
		}
	}
	return n
}

// Bounds of what an evaluation keeps, written as JSON.
var (
	// maxDecisionBytes bounds the rules Gantry reads (messages, notes,
	// notification payloads...), together: they go into receipts, logs
	// and notifications.
	maxDecisionBytes int64 = 4 << 20
	// maxKeptValue bounds one rule value kept in Result.Values, and
	// maxKeptValues all of them; a value over either is replaced by a note.
	maxKeptValue  int64 = 1 << 20
	maxKeptValues int64 = 4 << 20
)

// checkDecisionSize refuses a result whose rules read for policy type typ
// are over maxDecisionBytes.
func checkDecisionSize(typ string, obj ast.Object) error {
	var n int64
	var err error
	obj.Foreach(func(k, v *ast.Term) {
		name, ok := k.Value.(ast.String)
		if !ok || err != nil {
			return
		}
		if _, read := ruleShape(typ, string(name)); !read {
			return
		}
		if n += sizeOf(v.Value, maxDecisionBytes-n).text; n > maxDecisionBytes {
			err = fmt.Errorf("rules %s and the others Gantry reads are over %s as JSON: %w", string(name), byteSize(maxDecisionBytes), ErrTooLarge)
		}
	})
	return err
}

// keptValues converts the rules of obj for Result.Values, each within
// maxKeptValue and all within maxKeptValues, in the order of their names.
func keptValues(obj ast.Object) map[string]any {
	out := make(map[string]any, obj.Len())
	tooLarge := fmt.Sprintf("(value not kept: over %s as JSON)", byteSize(maxKeptValue))
	noRoom := fmt.Sprintf("(value not kept: the values of this evaluation are over %s as JSON)", byteSize(maxKeptValues))
	left := maxKeptValues
	work := 4 * maxKeptValues // what measuring may walk: values over the limits are measured in part
	var names []string
	obj.Foreach(func(k, _ *ast.Term) {
		if name, ok := k.Value.(ast.String); ok {
			names = append(names, string(name))
		}
	})
	sort.Strings(names)
	for _, name := range names {
		v := obj.Get(ast.StringTerm(name)).Value
		if work <= 0 {
			out[name] = noRoom
			continue
		}
		most := min(maxKeptValue, left)
		n := sizeOf(v, most).text
		work -= n
		switch {
		case n <= most:
			left -= n
			out[name] = toGo(v)
		case most == maxKeptValue:
			out[name] = tooLarge
		default:
			out[name] = noRoom
		}
	}
	return out
}
