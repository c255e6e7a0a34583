package policy

import (
	"context"
	"encoding/json"
	"fmt"
	"runtime"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/gantry-iac/gantry/internal/db"
	"github.com/gantry-iac/gantry/internal/id"
	"github.com/gantry-iac/gantry/internal/labels"
	"github.com/gantry-iac/gantry/internal/policy/engine"
)

// Receipt is what one policy's evaluation left on a run.
type Receipt struct {
	ID        string
	RunID     string
	PolicyID  string
	Name      string
	Version   int
	Type      string
	Outcome   string
	Messages  []string
	Flags     []string
	Error     string
	Duration  time.Duration
	SampleKey string
	At        time.Time
}

// evaluated is one policy's result.
type evaluated struct {
	policy   Policy
	result   engine.Result
	err      error
	outcome  string
	messages []string
}

// Evaluation is the combined result of the policies of one decision point.
type Evaluation struct {
	Type     string
	Decision engine.Decision
	Receipts []Receipt
	// Decisions are each policy's own, in the order of Receipts (zero for
	// a policy that failed to evaluate).
	Decisions []engine.Decision
	Policies  []Policy
	Errors    []string // policies that failed to evaluate (fail closed)
}

// evaluate runs each policy on its own against one input (converted once),
// in parallel, combines the decisions as Spacelift does, and keeps samples.
// runID may be empty (simulations, pushes).
func (s *Service) evaluate(ctx context.Context, pols []Policy, typ string, input map[string]any, runID string) (Evaluation, error) {
	ev := Evaluation{Type: typ}
	if len(pols) == 0 {
		return ev, nil
	}
	in, err := engine.NewInput(input)
	if err != nil {
		return ev, fmt.Errorf("policy input: %w", err)
	}
	results := make([]evaluated, len(pols))
	sem := make(chan struct{}, runtime.GOMAXPROCS(0))
	var wg sync.WaitGroup
	for i, p := range pols {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			results[i] = s.evalOne(ctx, p, in)
		}()
	}
	wg.Wait()
	var decisions []engine.Decision
	now := time.Now()
	sm := &sampler{s: s, typ: typ, input: input}
	for _, e := range results {
		rc := Receipt{ID: id.New("rcp"), RunID: runID, PolicyID: e.policy.ID, Name: e.policy.Name, Version: e.policy.Version,
			Type: typ, Outcome: e.outcome, Messages: e.messages, Flags: e.result.Decision.Flags, Duration: e.result.Duration, At: now}
		if e.err != nil {
			rc.Error = e.err.Error()
			ev.Errors = append(ev.Errors, fmt.Sprintf("policy %s: %v", e.policy.ID, e.err))
			ev.Decisions = append(ev.Decisions, engine.Decision{})
		} else {
			decisions = append(decisions, e.result.Decision)
			ev.Decisions = append(ev.Decisions, e.result.Decision)
		}
		ev.Policies = append(ev.Policies, e.policy)
		key, err := s.keepSample(ctx, sm, e, runID)
		if err != nil {
			s.log.WarnContext(ctx, "keeping a policy sample failed", "policy", e.policy.ID, "error", err)
		}
		rc.SampleKey = key
		ev.Receipts = append(ev.Receipts, rc)
	}
	ev.Decision = engine.Combine(typ, decisions)
	return ev, nil
}

func (s *Service) evalOne(ctx context.Context, p Policy, in engine.Input) evaluated {
	e := evaluated{policy: p}
	compiled, err := s.Compile(p)
	if err != nil {
		e.err, e.outcome = err, "error"
		return e
	}
	e.result, e.err = compiled.Eval(ctx, in)
	if e.err != nil {
		e.outcome = "error"
		return e
	}
	e.outcome, e.messages = Outcome(p.Type, e.result.Decision)
	return e
}

// Outcome names a decision of one policy for its receipt.
func Outcome(typ string, d engine.Decision) (string, []string) {
	switch typ {
	case engine.TypePlan:
		switch {
		case len(d.Deny) > 0:
			return "deny", append(append([]string{}, d.Deny...), d.Warn...)
		case len(d.Warn) > 0:
			return "warn", d.Warn
		}
		return "allow", nil
	case engine.TypeApproval:
		switch {
		case d.Reject:
			return "reject", d.RejectNotes
		case d.Approve:
			return "approve", d.ApproveNotes
		}
		return "undecided", nil
	case engine.TypeTrigger:
		if len(d.Trigger) > 0 {
			return "trigger", d.Trigger
		}
		return "none", nil
	case engine.TypePush:
		return pushOutcome(d), messageList(d.Message)
	case engine.TypeNotification:
		n := len(d.Webhook) + len(d.Slack) + len(d.Teams) + len(d.Email) + len(d.Inbox)
		if n == 0 {
			return "none", nil
		}
		return "notify", []string{fmt.Sprintf("%d webhook, %d slack, %d teams, %d email, %d inbox",
			len(d.Webhook), len(d.Slack), len(d.Teams), len(d.Email), len(d.Inbox))}
	case engine.TypeLogin:
		switch {
		case d.DenyLogin:
			return "deny", nil
		case d.Admin:
			return "admin", nil
		case d.Allow:
			return "allow", nil
		}
		return "undecided", nil
	}
	return "", nil
}

func messageList(m string) []string {
	if m == "" {
		return nil
	}
	return []string{m}
}

func pushOutcome(d engine.Decision) string {
	if d.Fail {
		return "fail"
	}
	return d.PushAction()
}

// sampler stores the input of one evaluation once, the first time a
// policy's sample needs it.
type sampler struct {
	s     *Service
	typ   string
	input map[string]any
	once  sync.Once
	key   string
	err   error
}

func (sm *sampler) inputKey(ctx context.Context) (string, error) {
	sm.once.Do(func() {
		data, err := json.Marshal(sm.input)
		if err != nil {
			sm.err = err
			return
		}
		sm.key = id.New("inp")
		_, sm.err = sm.s.db.Exec(ctx, `INSERT INTO policy_inputs (key, type, input, created_at) VALUES ($1, $2, $3, $4)`,
			sm.key, sm.typ, string(data), time.Now().UnixNano())
	})
	return sm.key, sm.err
}

// keepSample stores the evaluation as a sample when the policy asked for
// it, or when the service keeps the newest N evaluations of every policy.
// The input is stored as the policies saw it (for plan policies, with
// sensitive values already sanitized).
func (s *Service) keepSample(ctx context.Context, sm *sampler, e evaluated, runID string) (string, error) {
	explicit := e.err == nil && e.result.Decision.Sample
	if !explicit && s.SampleLast <= 0 {
		return "", nil
	}
	inputKey, err := sm.inputKey(ctx)
	if err != nil {
		return "", err
	}
	res := obj{"outcome": e.outcome, "messages": nonNil(e.messages), "values": e.result.Values}
	if e.err != nil {
		res["error"] = e.err.Error()
	}
	resJSON, err := json.Marshal(res)
	if err != nil {
		return "", err
	}
	key := id.New("smp")
	now := time.Now().UnixNano()
	if _, err := s.db.Exec(ctx, `INSERT INTO policy_samples (key, policy_id, policy_version, type, run_id, explicit, outcome, input_key, result, created_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)`, key, e.policy.ID, e.policy.Version, sm.typ, runID, explicit, e.outcome, inputKey, string(resJSON), now); err != nil {
		return "", err
	}
	// Keep the newest N kept-by-default samples of the policy.
	_, err = s.db.Exec(ctx, `DELETE FROM policy_samples WHERE policy_id = $1 AND NOT explicit AND key NOT IN
		(SELECT key FROM policy_samples WHERE policy_id = $1 AND NOT explicit ORDER BY key DESC LIMIT $2)`, e.policy.ID, max(s.SampleLast, 0))
	return key, err
}

// PruneInputs deletes stored inputs no sample refers to any more.
func (s *Service) PruneInputs(ctx context.Context) error {
	_, err := s.db.Exec(ctx, `DELETE FROM policy_inputs WHERE created_at < $1 AND NOT EXISTS (SELECT 1 FROM policy_samples WHERE input_key = policy_inputs.key)`,
		time.Now().Add(-time.Minute).UnixNano())
	return err
}

// record returns the function that stores an evaluation's receipts on a
// run and applies its flags, inside the transaction that acts on it.
func (s *Service) record(ev Evaluation) func(ctx context.Context, runID string) error {
	return func(ctx context.Context, runID string) error {
		for _, rc := range ev.Receipts {
			msgs, _ := json.Marshal(nonNil(rc.Messages))
			flags, _ := json.Marshal(nonNil(rc.Flags))
			if _, err := s.db.Exec(ctx, `INSERT INTO policy_receipts (id, run_id, policy_id, policy_name, policy_version, type, outcome, messages, flags, error, duration_us, sample_key, at)
				VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)`, rc.ID, runID, rc.PolicyID, rc.Name, rc.Version, rc.Type, rc.Outcome,
				string(msgs), string(flags), rc.Error, rc.Duration.Microseconds(), rc.SampleKey, rc.At.UnixNano()); err != nil {
				return err
			}
		}
		return s.applyFlags(ctx, runID, ev)
	}
}

func nonNil(l []string) []string {
	if l == nil {
		return []string{}
	}
	return l
}

// applyFlags adds and removes a run's flags as Spacelift's policy flag
// reset: each policy that sets a flag owns it; a policy's reset_flag gives
// up its own ownership (its resets first, then its flags: a policy that
// both sets and resets a flag keeps it), and a flag goes only once every
// owner gave it up. A reset by a policy that does not own the flag does
// nothing, and a flag that has no owner (carried over from the run that
// triggered this one before owners were kept) stays.
func (s *Service) applyFlags(ctx context.Context, runID string, ev Evaluation) error {
	var add, reset []string
	for _, d := range ev.Decisions {
		add, reset = append(add, d.Flags...), append(reset, d.ResetFlags...)
	}
	if len(add) == 0 && len(reset) == 0 {
		return nil
	}
	var cur string
	if err := s.db.QueryRow(ctx, `SELECT flags FROM runs WHERE id = $1`, runID).Scan(&cur); err != nil {
		return err
	}
	flags, err := labels.Decode(cur)
	if err != nil {
		return err
	}
	owners, err := s.flagOwners(ctx, runID)
	if err != nil {
		return err
	}
	set := map[string]bool{}
	for _, f := range flags {
		set[f] = true
	}
	for i, d := range ev.Decisions {
		pol := ev.Policies[i].ID
		for _, f := range d.ResetFlags {
			if !owners[f][pol] {
				continue
			}
			delete(owners[f], pol)
			if _, err := s.db.Exec(ctx, `DELETE FROM run_flag_owners WHERE run_id = $1 AND flag = $2 AND policy_id = $3`, runID, f, pol); err != nil {
				return err
			}
			if len(owners[f]) == 0 {
				delete(set, f)
			}
		}
		for _, f := range d.Flags {
			set[f] = true
			if owners[f][pol] {
				continue
			}
			if owners[f] == nil {
				owners[f] = map[string]bool{}
			}
			owners[f][pol] = true
			if _, err := s.db.Exec(ctx, `INSERT INTO run_flag_owners (run_id, flag, policy_id) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING`, runID, f, pol); err != nil {
				return err
			}
		}
	}
	out := make([]string, 0, len(set))
	for f := range set {
		out = append(out, f)
	}
	sort.Strings(out)
	_, err = s.db.Exec(ctx, `UPDATE runs SET flags = $2 WHERE id = $1`, runID, labels.Encode(out))
	return err
}

// flagOwners returns the policies that own each flag of a run.
func (s *Service) flagOwners(ctx context.Context, runID string) (map[string]map[string]bool, error) {
	type owner struct{ flag, policy string }
	rows, err := db.Collect(ctx, s.db, func(row db.Scanner) (owner, error) {
		var o owner
		return o, row.Scan(&o.flag, &o.policy)
	}, `SELECT flag, policy_id FROM run_flag_owners WHERE run_id = $1`, runID)
	if err != nil {
		return nil, err
	}
	out := map[string]map[string]bool{}
	for _, o := range rows {
		if out[o.flag] == nil {
			out[o.flag] = map[string]bool{}
		}
		out[o.flag][o.policy] = true
	}
	return out, nil
}

// FlagOwners returns the policies that own each flag of a run (flag ->
// policy ids, sorted): a run a trigger policy starts carries them over
// with the flags.
func (s *Service) FlagOwners(ctx context.Context, runID string) (map[string][]string, error) {
	owners, err := s.flagOwners(ctx, runID)
	if err != nil {
		return nil, err
	}
	out := map[string][]string{}
	for f, ps := range owners {
		for p := range ps {
			out[f] = append(out[f], p)
		}
		sort.Strings(out[f])
	}
	return out, nil
}

// Receipts returns the receipts of a run, oldest first.
func (s *Service) Receipts(ctx context.Context, runID string) ([]Receipt, error) {
	return db.Collect(ctx, s.db, func(row db.Scanner) (Receipt, error) {
		var rc Receipt
		var msgs, flags string
		var us, at int64
		if err := row.Scan(&rc.ID, &rc.RunID, &rc.PolicyID, &rc.Name, &rc.Version, &rc.Type, &rc.Outcome, &msgs, &flags, &rc.Error, &us, &rc.SampleKey, &at); err != nil {
			return Receipt{}, err
		}
		_ = json.Unmarshal([]byte(msgs), &rc.Messages)
		_ = json.Unmarshal([]byte(flags), &rc.Flags)
		rc.Duration, rc.At = time.Duration(us)*time.Microsecond, time.Unix(0, at).UTC()
		return rc, nil
	}, `SELECT id, run_id, policy_id, policy_name, policy_version, type, outcome, messages, flags, error, duration_us, sample_key, at
		FROM policy_receipts WHERE run_id = $1 ORDER BY at, id`, runID)
}

// failClosed lists evaluation errors as messages.
func failClosed(ev Evaluation) string { return strings.Join(ev.Errors, "; ") }
