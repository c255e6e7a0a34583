package engine

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"sync/atomic"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/rego"
	"github.com/open-policy-agent/opa/v1/topdown"
)

// Timeouts is how long an evaluation of a policy of each type may take.
// Tests and servers may change it before evaluating (not while).
var Timeouts = map[string]time.Duration{
	TypePlan:         45 * time.Second,
	TypePush:         10 * time.Second,
	TypeNotification: 10 * time.Second,
	TypeApproval:     5 * time.Second,
	TypeTrigger:      5 * time.Second,
	TypeLogin:        5 * time.Second,
}

// defaultTimeout applies to a type missing from Timeouts.
const defaultTimeout = 5 * time.Second

// ErrTimeout is wrapped by the error of an evaluation that ran out of time.
var ErrTimeout = errors.New("policy evaluation timed out")

// ErrBusy is wrapped by the error of an evaluation refused because too many
// evaluations that timed out are still running (see Eval).
var ErrBusy = errors.New("policy engine busy: too many timed-out evaluations still running, try again later")

// evalGrace is how long after the deadline Eval waits for the evaluation to
// stop by itself before abandoning it.
var evalGrace = 100 * time.Millisecond

// maxAbandoned bounds the evaluations that timed out and still run.
const maxAbandoned = 8

// abandoned counts the evaluations Eval returned from without waiting for
// and that still run.
var abandoned atomic.Int64

// Input is a policy input converted once to OPA's value form, to be
// evaluated by many policies. The zero Input is an empty object.
type Input struct {
	value   ast.Value
	helpers *helperCache // PLAN helper sets, shared by the policies evaluated
}

// NewInput converts v: a JSON-compatible Go value (map[string]any, []any,
// string, float64, json.Number, int, bool, nil...) or a JSON document as
// json.RawMessage or []byte. The top level must be an object. Numbers too
// large to compute with (longer than 100 characters, or with an exponent
// beyond ±400) are refused.
func NewInput(v any) (Input, error) {
	var val ast.Value
	var err error
	switch x := v.(type) {
	case json.RawMessage:
		val, err = valueFromJSON(x)
	case []byte:
		val, err = valueFromJSON(x)
	case ast.Value:
		val, err = x, checkNumbers(x)
	default:
		// Check before converting too: OPA refuses some of the numbers
		// too large, less clearly.
		if err = checkGoNumbers(v); err == nil {
			val, err = ast.InterfaceToValue(v)
		}
		if err == nil {
			err = checkNumbers(val)
		}
	}
	if err != nil {
		return Input{}, fmt.Errorf("policy input: %w", err)
	}
	if _, ok := val.(ast.Object); !ok {
		return Input{}, fmt.Errorf("policy input: must be a JSON object, not %s", ast.ValueName(val))
	}
	return Input{value: val, helpers: newHelperCache(val)}, nil
}

// checkNumbers refuses the numbers of v too large to compute with (the
// JSON parser checks them as it reads).
func checkNumbers(v ast.Value) error {
	var err error
	ast.WalkTerms(v, func(t *ast.Term) bool {
		if err != nil {
			return true
		}
		if n, ok := t.Value.(ast.Number); ok {
			err = checkNumber(string(n))
		}
		return false
	})
	return err
}

// checkGoNumbers refuses the json.Numbers of v (through map[string]any and
// []any) too large to compute with.
func checkGoNumbers(v any) error {
	switch x := v.(type) {
	case json.Number:
		return checkNumber(string(x))
	case map[string]any:
		for _, e := range x {
			if err := checkGoNumbers(e); err != nil {
				return err
			}
		}
	case []any:
		for _, e := range x {
			if err := checkGoNumbers(e); err != nil {
				return err
			}
		}
	}
	return nil
}

// valueFromJSON converts a JSON document, keeping numbers exact.
func valueFromJSON(b []byte) (ast.Value, error) {
	return parseJSONValue(b)
}

// JSON returns the input as a JSON document.
func (in Input) JSON() ([]byte, error) {
	v := in.ast()
	x, err := ast.JSON(v)
	if err != nil {
		return nil, err
	}
	return json.Marshal(x)
}

func (in Input) ast() ast.Value {
	if in.value == nil {
		return ast.NewObject()
	}
	return in.value
}

// Result is the outcome of one evaluation.
type Result struct {
	// Values holds every rule of the policy's package with its value, as
	// plain JSON-compatible Go values: sets become []any sorted in OPA's
	// order (deterministic), numbers json.Number. Undefined rules are absent.
	// A value too large to keep (see keptValues) is a string saying so.
	Values   map[string]any
	Decision Decision
	Duration time.Duration
}

// Eval evaluates p against in under the timeout of p's type.
//
// OPA checks for cancellation between evaluation steps, not inside a
// built-in call, so the query runs in a goroutine of its own and Eval
// returns at the deadline (plus evalGrace) even if that goroutine is still
// busy in one call: it is abandoned, and finishes on its own. At most
// maxAbandoned abandoned evaluations are tolerated; while that many are
// still running, Eval refuses new evaluations with ErrBusy rather than pile
// up more.
func (p *Policy) Eval(ctx context.Context, in Input) (Result, error) {
	limit, ok := Timeouts[p.Type]
	if !ok || limit <= 0 {
		limit = defaultTimeout
	}
	if n := abandoned.Load(); n >= maxAbandoned {
		return Result{}, fmt.Errorf("policy %s: %w (%d evaluations that timed out are still running)", p.Name, ErrBusy, n)
	}
	tctx, cancel := context.WithTimeout(withMeter(withHelpers(ctx, in.helpers)), limit)
	defer cancel()
	// The watchdog (watchdog.go) may stop it too, when the heap grows too
	// large.
	ectx, stop := context.WithCancelCause(tctx)
	defer stop(nil)
	defer watch(stop)()

	start := time.Now()
	done := make(chan evalOutcome, 1) // buffered: an abandoned evaluation does not block
	// state: 0 running, 1 abandoned by Eval, 2 finished first.
	var state atomic.Int32
	go func() {
		obj, err := p.run(ectx, in)
		done <- evalOutcome{obj, err}
		if !state.CompareAndSwap(0, 2) {
			abandoned.Add(-1)
		}
	}()
	var out evalOutcome
	select {
	case out = <-done:
	case <-ectx.Done():
		grace := time.NewTimer(evalGrace)
		defer grace.Stop()
		select {
		case out = <-done:
		case <-grace.C:
			abandoned.Add(1)
			if state.CompareAndSwap(0, 1) {
				out = evalOutcome{err: ectx.Err()}
			} else { // it finished meanwhile
				abandoned.Add(-1)
				out = <-done
			}
		}
	}
	res := Result{Duration: time.Since(start)}
	if out.err != nil {
		return res, p.evalError(ctx, ectx, limit, out.err)
	}
	obj := out.obj
	if obj == nil {
		obj = ast.NewObject() // no rule defined
	}
	if err := checkDecisionSize(p.Type, obj); err != nil {
		return res, fmt.Errorf("policy %s: %w", p.Name, err)
	}
	var err error
	res.Decision, err = decode(p.Type, obj)
	if err != nil {
		return res, fmt.Errorf("policy %s: %w", p.Name, err)
	}
	res.Values = keptValues(obj)
	return res, nil
}

type evalOutcome struct {
	obj ast.Object // nil: no rule defined
	err error
}

// run evaluates the query: the package's object of rules. A panic (in
// OPA) is returned as an error: it happens in a goroutine of its own, where
// nothing else would recover it.
func (p *Policy) run(ctx context.Context, in Input) (_ ast.Object, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("evaluation panicked: %v", r)
		}
	}()
	var obj ast.Object
	rs, err := p.query.Eval(ctx,
		rego.EvalParsedInput(in.ast()),
		rego.EvalGenerateJSON(func(t *ast.Term, _ *rego.EvalContext) (any, error) {
			o, ok := t.Value.(ast.Object)
			if !ok {
				return nil, fmt.Errorf("package is %s, not an object", ast.ValueName(t.Value))
			}
			obj = o
			return nil, nil
		}),
	)
	if err != nil || len(rs) == 0 {
		return nil, err
	}
	return obj, nil
}

// evalError explains a failed evaluation: a timeout, the caller giving up,
// or an error raised by the policy.
func (p *Policy) evalError(ctx, ectx context.Context, limit time.Duration, err error) error {
	var te *topdown.Error
	cancelled := errors.As(err, &te) && te.Code == topdown.CancelErr
	if context.Cause(ectx) == errHeap {
		return heapError(p.Name)
	}
	if ctx.Err() != nil {
		return fmt.Errorf("policy %s: evaluation abandoned: %w", p.Name, ctx.Err())
	}
	if cancelled || errors.Is(ectx.Err(), context.DeadlineExceeded) {
		return fmt.Errorf("policy %s: %w after %s", p.Name, ErrTimeout, limit)
	}
	return fmt.Errorf("policy %s: %w", p.Name, err)
}

// toGo converts an OPA value to plain Go: objects map[string]any (keys
// that are not strings are written as JSON), arrays and sets []any (sets in
// OPA's sorted order), numbers json.Number.
func toGo(v ast.Value) any {
	switch v := v.(type) {
	case ast.Null:
		return nil
	case ast.Boolean:
		return bool(v)
	case ast.Number:
		return json.Number(v)
	case ast.String:
		return string(v)
	case *ast.Array:
		out := make([]any, 0, v.Len())
		v.Foreach(func(t *ast.Term) { out = append(out, toGo(t.Value)) })
		return out
	case ast.Set:
		out := make([]any, 0, v.Len())
		v.Sorted().Foreach(func(t *ast.Term) { out = append(out, toGo(t.Value)) })
		return out
	case ast.Object:
		out := make(map[string]any, v.Len())
		v.Foreach(func(k, t *ast.Term) {
			key, ok := k.Value.(ast.String)
			if !ok {
				key = ast.String(k.String())
			}
			out[string(key)] = toGo(t.Value)
		})
		return out
	}
	return v.String()
}

// sortedStrings returns the strings of a set or array value, sorted, or an
// error naming what else it holds.
func sortedStrings(rule string, v ast.Value) ([]string, error) {
	var out []string
	var bad ast.Value
	each := func(t *ast.Term) {
		if s, ok := t.Value.(ast.String); ok {
			out = append(out, string(s))
		} else if bad == nil {
			bad = t.Value
		}
	}
	switch v := v.(type) {
	case ast.Set:
		v.Foreach(each)
	case *ast.Array:
		v.Foreach(each)
	default:
		return nil, fmt.Errorf("rule %s must be a set of strings, but its value is %s", rule, ast.ValueName(v))
	}
	if bad != nil {
		return nil, fmt.Errorf("rule %s must be a set of strings, but it holds %s %s", rule, ast.ValueName(bad), bad)
	}
	sort.Strings(out)
	return out, nil
}
