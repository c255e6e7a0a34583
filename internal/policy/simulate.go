package policy

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"sort"
	"time"

	"github.com/gantry-iac/gantry/internal/db"
	"github.com/gantry-iac/gantry/internal/errs"
	"github.com/gantry-iac/gantry/internal/policy/engine"
	"github.com/gantry-iac/gantry/internal/truncate"
)

// Sample is a stored evaluation of a policy.
type Sample struct {
	Key       string
	PolicyID  string
	Version   int
	Type      string
	RunID     string
	Explicit  bool // the policy asked for it with `sample`
	Outcome   string
	CreatedAt time.Time
	Input     json.RawMessage // only from Sample
	Result    json.RawMessage // {"outcome", "messages", "values"[, "error"]}; only from Sample
}

// MaxInput bounds a simulation input.
const MaxInput = 64 << 20

// Samples lists a policy's samples older than cursor (a sample key; ""
// for the newest), newest first.
func (s *Service) Samples(ctx context.Context, policyID, cursor string, limit int) ([]Sample, error) {
	if _, err := s.Get(ctx, policyID); err != nil {
		return nil, err
	}
	q := `SELECT key, policy_id, policy_version, type, run_id, explicit, outcome, created_at FROM policy_samples WHERE policy_id = $1`
	args := []any{policyID, limit}
	if cursor != "" {
		q += ` AND key < $3`
		args = append(args, cursor)
	}
	return db.Collect(ctx, s.db, func(row db.Scanner) (Sample, error) {
		var sm Sample
		var at int64
		if err := row.Scan(&sm.Key, &sm.PolicyID, &sm.Version, &sm.Type, &sm.RunID, &sm.Explicit, &sm.Outcome, &at); err != nil {
			return Sample{}, err
		}
		sm.CreatedAt = time.Unix(0, at).UTC()
		return sm, nil
	}, q+` ORDER BY key DESC LIMIT $2`, args...)
}

// Sample returns one sample of a policy with its input and result.
func (s *Service) Sample(ctx context.Context, policyID, key string) (Sample, error) {
	var sm Sample
	var at int64
	var input, result string
	err := s.db.QueryRow(ctx, `SELECT sp.key, sp.policy_id, sp.policy_version, sp.type, sp.run_id, sp.explicit, sp.outcome, sp.created_at, i.input, sp.result
		FROM policy_samples sp JOIN policy_inputs i ON i.key = sp.input_key WHERE sp.policy_id = $1 AND sp.key = $2`, policyID, key).
		Scan(&sm.Key, &sm.PolicyID, &sm.Version, &sm.Type, &sm.RunID, &sm.Explicit, &sm.Outcome, &at, &input, &result)
	if errors.Is(err, sql.ErrNoRows) {
		return sm, errs.E(errs.NotFound, "policy %q has no sample %q", policyID, key)
	}
	sm.CreatedAt = time.Unix(0, at).UTC()
	sm.Input, sm.Result = json.RawMessage(input), json.RawMessage(result)
	return sm, err
}

// Decision is one policy's decision on one input, as simulate shows it.
type Decision struct {
	Outcome  string         `json:"outcome"`
	Messages []string       `json:"messages"`
	Values   map[string]any `json:"values"`
	Error    string         `json:"error,omitempty"`
	Duration time.Duration  `json:"-"`
}

// Simulation is a policy evaluated on an input, and how its decision
// differs from the recorded one (for a sample).
type Simulation struct {
	PolicyID  string
	Version   int  // the version evaluated (0: an edited body)
	Edited    bool // an edited body, not the stored one
	Engine    string
	SampleKey string
	Decision  Decision
	Recorded  *Decision // the sample's recorded decision
	Changes   []string  // differences from Recorded, one per line
}

// Simulate evaluates a policy (its stored body, or body if not empty) on an
// input or on a stored sample.
func (s *Service) Simulate(ctx context.Context, policyID string, input []byte, sampleKey, body string) (Simulation, error) {
	p, err := s.Get(ctx, policyID)
	if err != nil {
		return Simulation{}, err
	}
	sim := Simulation{PolicyID: p.ID, Version: p.Version, SampleKey: sampleKey}
	if body != "" {
		p.Body, sim.Version, sim.Edited = body, 0, true
	}
	compiled, err := s.Compile(p)
	if err != nil {
		var ce *engine.CompileError
		if errors.As(err, &ce) {
			return sim, errs.E(errs.Invalid, "policy does not compile: %s", ce.Error())
		}
		return sim, err
	}
	sim.Engine = compiled.Engine
	if sampleKey != "" {
		sm, err := s.Sample(ctx, policyID, sampleKey)
		if err != nil {
			return sim, err
		}
		input = sm.Input
		var rec Decision
		if err := json.Unmarshal(sm.Result, &rec); err != nil {
			return sim, fmt.Errorf("sample %s: %w", sampleKey, err)
		}
		sim.Recorded = &rec
	}
	if len(input) > MaxInput {
		return sim, errs.E(errs.TooLarge, "input larger than %d bytes", MaxInput)
	}
	if !json.Valid(input) {
		return sim, errs.E(errs.Invalid, "input is not valid JSON")
	}
	sim.Decision = s.decide(ctx, compiled, p.Type, input)
	if sim.Recorded != nil {
		sim.Changes = Diff(*sim.Recorded, sim.Decision)
	}
	return sim, nil
}

func (s *Service) decide(ctx context.Context, compiled *engine.Policy, typ string, input []byte) Decision {
	in, err := engine.NewInput(json.RawMessage(input))
	if err != nil {
		return Decision{Outcome: "error", Error: err.Error(), Messages: []string{}, Values: map[string]any{}}
	}
	res, err := compiled.Eval(ctx, in)
	if err != nil {
		return Decision{Outcome: "error", Error: err.Error(), Messages: []string{}, Values: map[string]any{}, Duration: res.Duration}
	}
	outcome, msgs := Outcome(typ, res.Decision)
	return Decision{Outcome: outcome, Messages: nonNil(msgs), Values: normalize(res.Values), Duration: res.Duration}
}

// normalize makes values compare equal to their JSON round trip.
func normalize(v map[string]any) map[string]any {
	data, err := json.Marshal(v)
	if err != nil {
		return v
	}
	out := map[string]any{}
	_ = json.Unmarshal(data, &out)
	return out
}

// Diff lists how decision b differs from a: the outcome, then every rule
// whose value changed.
func Diff(a, b Decision) []string {
	var out []string
	if a.Outcome != b.Outcome {
		out = append(out, fmt.Sprintf("outcome: %s -> %s", a.Outcome, b.Outcome))
	}
	if a.Error != b.Error {
		out = append(out, fmt.Sprintf("error: %q -> %q", a.Error, b.Error))
	}
	av, bv := normalize(a.Values), normalize(b.Values)
	keys := map[string]bool{}
	for k := range av {
		keys[k] = true
	}
	for k := range bv {
		keys[k] = true
	}
	sorted := make([]string, 0, len(keys))
	for k := range keys {
		sorted = append(sorted, k)
	}
	sort.Strings(sorted)
	for _, k := range sorted {
		x, inA := av[k]
		y, inB := bv[k]
		switch {
		case !inA:
			out = append(out, fmt.Sprintf("%s: (undefined) -> %s", k, compact(y)))
		case !inB:
			out = append(out, fmt.Sprintf("%s: %s -> (undefined)", k, compact(x)))
		case !reflect.DeepEqual(x, y):
			out = append(out, setDiff(k, x, y)...)
		}
	}
	return out
}

// setDiff shows a changed set (array) as its added and removed members,
// anything else as old -> new.
func setDiff(k string, x, y any) []string {
	xa, okA := x.([]any)
	ya, okB := y.([]any)
	if !okA || !okB {
		return []string{fmt.Sprintf("%s: %s -> %s", k, compact(x), compact(y))}
	}
	var out []string
	for _, e := range xa {
		if !containsValue(ya, e) {
			out = append(out, fmt.Sprintf("%s: - %s", k, compact(e)))
		}
	}
	for _, e := range ya {
		if !containsValue(xa, e) {
			out = append(out, fmt.Sprintf("%s: + %s", k, compact(e)))
		}
	}
	return out
}

func containsValue(list []any, v any) bool {
	for _, e := range list {
		if reflect.DeepEqual(e, v) {
			return true
		}
	}
	return false
}

func compact(v any) string {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(v)
	out := bytes.TrimSpace(b.Bytes())
	if len(out) > 300 {
		return truncate.String(string(out), 300) + "..."
	}
	return string(out)
}

// ReplayItem is one sample whose decision an edited body changes.
type ReplayItem struct {
	SampleKey string
	RunID     string
	CreatedAt time.Time
	Before    string // recorded outcome
	After     string // outcome with the edited body
	Changes   []string
}

// Replay evaluates an edited body against every stored sample of the
// policy newer than since, and returns the samples whose decision would
// change, and how many samples it evaluated.
func (s *Service) Replay(ctx context.Context, policyID, body string, since time.Time) ([]ReplayItem, int, error) {
	p, err := s.Get(ctx, policyID)
	if err != nil {
		return nil, 0, err
	}
	p.Body = body
	compiled, err := s.Compile(p)
	if err != nil {
		var ce *engine.CompileError
		if errors.As(err, &ce) {
			return nil, 0, errs.E(errs.Invalid, "policy does not compile: %s", ce.Error())
		}
		return nil, 0, err
	}
	samples, err := s.Samples(ctx, policyID, "", 100000)
	if err != nil {
		return nil, 0, err
	}
	out := []ReplayItem{}
	n := 0
	for _, meta := range samples {
		if meta.CreatedAt.Before(since) {
			continue
		}
		sm, err := s.Sample(ctx, policyID, meta.Key)
		if err != nil {
			return nil, n, err
		}
		var rec Decision
		if err := json.Unmarshal(sm.Result, &rec); err != nil {
			continue
		}
		n++
		now := s.decide(ctx, compiled, p.Type, sm.Input)
		if ch := Diff(rec, now); len(ch) > 0 {
			out = append(out, ReplayItem{SampleKey: sm.Key, RunID: sm.RunID, CreatedAt: sm.CreatedAt, Before: rec.Outcome, After: now.Outcome, Changes: ch})
		}
	}
	return out, n, nil
}
