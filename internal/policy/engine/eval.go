package engine

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
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

// Input is a policy input converted once to OPA's value form, to be
// evaluated by many policies. The zero Input is an empty object.
type Input struct {
	value   ast.Value
	helpers *helperCache // PLAN helper sets, shared by the policies evaluated
}

// NewInput converts v: a JSON-compatible Go value (map[string]any, []any,
// string, float64, json.Number, int, bool, nil...) or a JSON document as
// json.RawMessage or []byte. The top level must be an object.
func NewInput(v any) (Input, error) {
	var val ast.Value
	var err error
	switch x := v.(type) {
	case json.RawMessage:
		val, err = valueFromJSON(x)
	case []byte:
		val, err = valueFromJSON(x)
	case ast.Value:
		val = x
	default:
		val, err = ast.InterfaceToValue(v)
	}
	if err != nil {
		return Input{}, fmt.Errorf("policy input: %w", err)
	}
	if _, ok := val.(ast.Object); !ok {
		return Input{}, fmt.Errorf("policy input: must be a JSON object, not %s", ast.ValueName(val))
	}
	return Input{value: val, helpers: newHelperCache(val)}, nil
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
	Values   map[string]any
	Decision Decision
	Duration time.Duration
}

// Eval evaluates p against in under the timeout of p's type.
func (p *Policy) Eval(ctx context.Context, in Input) (Result, error) {
	limit, ok := Timeouts[p.Type]
	if !ok || limit <= 0 {
		limit = defaultTimeout
	}
	ectx, cancel := context.WithTimeout(withHelpers(ctx, in.helpers), limit)
	defer cancel()

	start := time.Now()
	var obj ast.Object
	rs, err := p.query.Eval(ectx,
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
	res := Result{Duration: time.Since(start)}
	if err != nil {
		return res, p.evalError(ctx, ectx, limit, err)
	}
	if len(rs) == 0 || obj == nil {
		obj = ast.NewObject() // no rule defined
	}
	res.Decision, err = decode(p.Type, obj)
	if err != nil {
		return res, fmt.Errorf("policy %s: %w", p.Name, err)
	}
	res.Values = make(map[string]any, obj.Len())
	obj.Foreach(func(k, v *ast.Term) {
		if s, ok := k.Value.(ast.String); ok {
			res.Values[string(s)] = toGo(v.Value)
		}
	})
	return res, nil
}

// evalError explains a failed evaluation: a timeout, the caller giving up,
// or an error raised by the policy.
func (p *Policy) evalError(ctx, ectx context.Context, limit time.Duration, err error) error {
	var te *topdown.Error
	cancelled := errors.As(err, &te) && te.Code == topdown.CancelErr
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
