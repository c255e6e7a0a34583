package drift

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"maps"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/gantry-iac/gantry/internal/db"
	"github.com/gantry-iac/gantry/internal/db/dbtest"
	"github.com/gantry-iac/gantry/internal/errs"
	"github.com/gantry-iac/gantry/internal/events"
	"github.com/gantry-iac/gantry/internal/run"
	"github.com/gantry-iac/gantry/internal/schedule"
	"github.com/gantry-iac/gantry/internal/secrets"
	"github.com/gantry-iac/gantry/internal/space"
	"github.com/gantry-iac/gantry/internal/stack"
)

func TestMain(m *testing.M) { dbtest.Main(m) }

const worker = "wrk-test"

// fixture holds the services of one database, with drift recording wired
// into the end of runs as the server wires it.
type fixture struct {
	ctx       context.Context
	d         *db.DB
	spaces    *space.Service
	stacks    *stack.Service
	runs      *run.Service
	schedules *schedule.Service
	drift     *Service
	n         int
}

func newFixture(t *testing.T, d *db.DB) *fixture {
	t.Helper()
	box, err := secrets.NewBox(bytes.Repeat([]byte{1}, 32))
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}))
	f := &fixture{ctx: context.Background(), d: d, spaces: space.NewService(d), stacks: stack.NewService(d, box),
		runs: run.NewService(d, events.NewHub(), box, log), schedules: schedule.New(d)}
	f.drift = New(d, f.runs, f.schedules, log)
	f.runs.OnTerminal = f.drift.OnTerminal
	if err := f.spaces.EnsureRoot(f.ctx); err != nil {
		t.Fatal(err)
	}
	return f
}

// stack creates stack st-N in a space, on a pool of its own.
func (f *fixture) stack(t *testing.T, spaceID string) stack.Stack {
	t.Helper()
	f.n++
	id := fmt.Sprintf("st-%d", f.n)
	ensurePool(t, f.d, "pool-"+id, spaceID)
	st, err := f.stacks.Create(f.ctx, stack.Stack{ID: id, Space: spaceID, Repository: "https://example.com/infra.git", WorkerPool: "pool-" + id})
	if err != nil {
		t.Fatalf("create stack: %v", err)
	}
	return st
}

// driftRun runs a drift detection run on a stack through the worker API:
// its plan JSON is planJSON (nil: none uploaded); failed ends it FAILED.
func (f *fixture) driftRun(t *testing.T, stackID string, planJSON []byte, failed bool) run.Run {
	t.Helper()
	r, err := f.runs.Create(f.ctx, run.New{StackID: stackID, Type: run.Proposed, Drift: true, TriggeredBy: schedule.TriggerDrift})
	if err != nil {
		t.Fatal(err)
	}
	c, err := f.runs.Claim(f.ctx, r.Pool, worker)
	if err != nil || c == nil || c.Run.ID != r.ID {
		t.Fatalf("Claim: %v, %v; want run %s", c, err, r.ID)
	}
	for _, to := range []string{run.Initializing, run.Planning} {
		if _, err := f.runs.Phase(f.ctx, r.ID, worker, to, "", ""); err != nil {
			t.Fatal(err)
		}
	}
	if planJSON != nil {
		if err := f.runs.PutArtifact(f.ctx, r.ID, run.ArtifactPlanJSON, planJSON); err != nil {
			t.Fatal(err)
		}
	}
	if failed {
		if _, err := f.runs.Finish(f.ctx, r.ID, worker, false, "refresh failed"); err != nil {
			t.Fatal(err)
		}
	} else if _, _, err := f.runs.Planned(f.ctx, r.ID, worker, true, run.Delta{Change: 1}, false); err != nil {
		t.Fatal(err)
	}
	got, err := f.runs.Get(f.ctx, r.ID)
	if err != nil {
		t.Fatal(err)
	}
	if want := map[bool]string{false: run.Finished, true: run.Failed}[failed]; got.State != want {
		t.Fatalf("drift run %s is %s, want %s", r.ID, got.State, want)
	}
	return got
}

func (f *fixture) show(t *testing.T, stackID string) Detail {
	t.Helper()
	d, err := f.drift.Show(f.ctx, stackID)
	if err != nil {
		t.Fatalf("Show(%s): %v", stackID, err)
	}
	return d
}

// driftPlan is the plan JSON of a drift detection run that found the given
// resources' tags.env changed from "prod" to the value given; provider is
// the provider type of every resource.
func driftPlan(t *testing.T, provider string, envs map[string]string) []byte {
	t.Helper()
	var drift, changes []change
	for _, addr := range slices.Sorted(maps.Keys(envs)) {
		drift = append(drift, managed(addr, "hashicorp/"+provider, []string{"update"}, obj{"tags": obj{"env": "prod"}}, obj{"tags": obj{"env": envs[addr]}}))
		changes = append(changes, managed(addr, "hashicorp/"+provider, []string{"update"}, obj{"tags": obj{"env": envs[addr]}}, obj{"tags": obj{"env": "prod"}}))
	}
	changes = append(changes, managed(provider+"_thing.steady", "hashicorp/"+provider, []string{"no-op"}, obj{}, obj{}))
	return plan(t, drift, changes)
}

func addresses(recs []Record) []string {
	out := []string{}
	for _, r := range recs {
		out = append(out, r.Address)
	}
	return out
}

func TestEpisodes(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, d *db.DB) {
		f := newFixture(t, d)
		st := f.stack(t, "")
		const a, b = "aws_s3_bucket.a", "aws_s3_bucket.b"

		// Run 1 finds a and b drifted: two episodes open.
		r1 := f.driftRun(t, st.ID, driftPlan(t, "aws", map[string]string{a: "dev", b: "dev"}), false)
		d1 := f.show(t, st.ID)
		if got := addresses(d1.Open); !reflect.DeepEqual(got, []string{a, b}) || len(d1.Resolved) != 0 {
			t.Fatalf("after run 1: open %v, resolved %d", got, len(d1.Resolved))
		}
		recA := d1.Open[0]
		if recA.FirstRunID != r1.ID || recA.LastRunID != r1.ID || recA.Cloud != "aws" || recA.Type != "aws_s3_bucket" || recA.Action != Changed ||
			!recA.FirstDetectedAt.Equal(recA.LastDetectedAt) || !recA.ResolvedAt.IsZero() || recA.ResolvedRunID != "" {
			t.Fatalf("record of a after run 1: %+v", recA)
		}
		if got := attrs(Resource{Attributes: recA.Attributes}); !reflect.DeepEqual(got, []attr{{"tags.env", `"prod"`, `"dev"`, false}}) {
			t.Fatalf("attributes of a: %v", got)
		}
		if s := d1.Status; s.Status != OutcomeDrifted || s.Drifted != 2 || s.LastRunID != r1.ID || !s.Since.Equal(recA.FirstDetectedAt) ||
			!reflect.DeepEqual(s.Clouds, []string{"aws"}) || s.PendingChanges || s.Scheduled {
			t.Fatalf("status after run 1: %+v", s)
		}

		// Run 2 finds a changed further, b back: a's episode goes on, b's
		// is resolved by run 2.
		r2 := f.driftRun(t, st.ID, driftPlan(t, "aws", map[string]string{a: "staging"}), false)
		d2 := f.show(t, st.ID)
		if len(d2.Open) != 1 || len(d2.Resolved) != 1 {
			t.Fatalf("after run 2: open %v, resolved %v", addresses(d2.Open), addresses(d2.Resolved))
		}
		if o := d2.Open[0]; o.ID != recA.ID || o.FirstRunID != r1.ID || o.LastRunID != r2.ID || !o.FirstDetectedAt.Equal(recA.FirstDetectedAt) ||
			o.LastDetectedAt.Before(recA.LastDetectedAt) || string(o.Attributes[0].After) != `"staging"` {
			t.Fatalf("a after run 2: %+v", o)
		}
		if r := d2.Resolved[0]; r.Address != b || r.ResolvedRunID != r2.ID || r.ResolvedAt.IsZero() || r.LastRunID != r1.ID {
			t.Fatalf("b after run 2: %+v", r)
		}
		if s := d2.Status; s.Drifted != 1 || s.Status != OutcomeDrifted || s.LastRunID != r2.ID {
			t.Fatalf("status after run 2: %+v", s)
		}

		// Run 3 is clean: everything resolved, newest first.
		r3 := f.driftRun(t, st.ID, driftPlan(t, "aws", nil), false)
		d3 := f.show(t, st.ID)
		if len(d3.Open) != 0 || !reflect.DeepEqual(addresses(d3.Resolved), []string{a, b}) || d3.Resolved[0].ResolvedRunID != r3.ID {
			t.Fatalf("after run 3: open %v, resolved %v", addresses(d3.Open), addresses(d3.Resolved))
		}
		if s := d3.Status; s.Status != OutcomeClean || s.Drifted != 0 || !s.Since.IsZero() {
			t.Fatalf("status after run 3: %+v", s)
		}

		// Run 4 finds b drifted again: a new episode, the old one kept.
		r4 := f.driftRun(t, st.ID, driftPlan(t, "aws", map[string]string{b: "qa"}), false)
		d4 := f.show(t, st.ID)
		if len(d4.Open) != 1 || d4.Open[0].Address != b || d4.Open[0].FirstRunID != r4.ID || len(d4.Resolved) != 2 {
			t.Fatalf("after run 4: open %+v, resolved %v", d4.Open, addresses(d4.Resolved))
		}
		for _, old := range d4.Resolved {
			if old.ID == d4.Open[0].ID {
				t.Fatal("the new episode reuses a resolved record")
			}
		}

		// Run 5 fails: what run 4 found stands, the status says the last
		// check failed and why, and when the last good check was.
		good := d4.Status.LastCheckedAt
		if s := d4.Status; !s.LastGoodAt.Equal(good) || s.LastGoodRunID != r4.ID || s.Error != "" {
			t.Fatalf("status after run 4 (good): %+v", s)
		}
		r5 := f.driftRun(t, st.ID, nil, true)
		d5 := f.show(t, st.ID)
		if s := d5.Status; s.Status != OutcomeFailed || s.Drifted != 1 || s.LastRunID != r5.ID || !reflect.DeepEqual(s.Clouds, []string{"aws"}) ||
			!s.LastGoodAt.Equal(good) || s.LastGoodRunID != r4.ID || !s.LastCheckedAt.After(good) || !strings.Contains(s.Error, "refresh failed") ||
			!strings.Contains(s.Error, r5.ID) {
			t.Fatalf("status after a failed run: %+v", s)
		}
		if len(d5.Open) != 1 || d5.Open[0].LastRunID != r4.ID {
			t.Fatalf("a failed run changed the open drift: %+v", d5.Open)
		}
		if list, _, err := f.drift.List(f.ctx, Filter{Status: OutcomeFailed}); err != nil || len(list) != 1 || list[0].Status != OutcomeFailed {
			t.Fatalf("List(failed) = %+v, %v; want the stack, failed", list, err)
		}
		if list, _, err := f.drift.List(f.ctx, Filter{Status: OutcomeDrifted}); err != nil || len(list) != 0 {
			t.Fatalf("List(drifted) = %+v, %v; want none (the status is failed)", list, err)
		}

		// A plan JSON that does not parse, or none: a failed check.
		f.driftRun(t, st.ID, []byte("{not json"), false)
		if s := f.show(t, st.ID).Status; s.Drifted != 1 || s.Status != OutcomeFailed || !s.LastGoodAt.Equal(good) ||
			!strings.Contains(s.Error, "reading the plan JSON") {
			t.Fatalf("status after an unreadable plan: %+v", s)
		}
		f.driftRun(t, st.ID, nil, false)
		if s := f.show(t, st.ID).Status; s.Status != OutcomeFailed || !s.LastGoodAt.Equal(good) || !strings.Contains(s.Error, "without a plan JSON") {
			t.Fatalf("status after a run without a plan JSON: %+v", s)
		}

		// The next good check clears the error.
		r6 := f.driftRun(t, st.ID, driftPlan(t, "aws", map[string]string{b: "qa"}), false)
		if s := f.show(t, st.ID).Status; s.Status != OutcomeDrifted || s.Error != "" || s.LastGoodRunID != r6.ID || !s.LastGoodAt.Equal(s.LastCheckedAt) {
			t.Fatalf("status after a good check again: %+v", s)
		}

		// Other runs are not drift checks.
		tr, err := f.runs.Create(f.ctx, run.New{StackID: st.ID, Type: run.Proposed, TriggeredBy: "alice"})
		if err != nil {
			t.Fatal(err)
		}
		if err := f.drift.OnTerminal(f.ctx, tr); err != nil {
			t.Fatal(err)
		}
		if s := f.show(t, st.ID).Status; s.LastRunID == tr.ID {
			t.Fatal("a run that is not a drift check was recorded as one")
		}
	})
}

func TestShowUnknownStack(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, d *db.DB) {
		f := newFixture(t, d)
		if _, err := f.drift.Show(f.ctx, "nope"); !errs.Is(err, errs.NotFound) {
			t.Fatalf("Show(nope): %v, want not found", err)
		}
		st := f.stack(t, "")
		if got := f.show(t, st.ID); got.Status.Status != "unchecked" || len(got.Open) != 0 || len(got.Resolved) != 0 {
			t.Fatalf("an unchecked stack: %+v", got)
		}
	})
}

func TestPendingChangesRecorded(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, d *db.DB) {
		f := newFixture(t, d)
		st := f.stack(t, "")
		code := managed("aws_instance.web", "hashicorp/aws", []string{"update"}, obj{"instance_type": "t3.micro"}, obj{"instance_type": "t3.small"})
		f.driftRun(t, st.ID, plan(t, nil, []change{code}), false)
		if s := f.show(t, st.ID).Status; s.Status != OutcomeClean || !s.PendingChanges || s.Drifted != 0 {
			t.Fatalf("status: %+v; want clean with pending changes", s)
		}
		// A failed check says nothing new: the pending changes stand.
		f.driftRun(t, st.ID, nil, true)
		if s := f.show(t, st.ID).Status; s.Status != OutcomeFailed || !s.PendingChanges || !reflect.DeepEqual(s.Clouds, []string{"aws"}) {
			t.Fatalf("status after a failed check: %+v; want failed, pending changes and clouds kept", s)
		}
	})
}

func TestList(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, d *db.DB) {
		f := newFixture(t, d)
		if _, err := f.spaces.Create(f.ctx, space.Space{ID: "team-a"}); err != nil {
			t.Fatal(err)
		}
		drifted := f.stack(t, "")      // st-1: aws, drifted
		clean := f.stack(t, "team-a")  // st-2: google, clean
		failed := f.stack(t, "team-a") // st-3: failed first check
		unchecked := f.stack(t, "")    // st-4: scheduled, never checked
		f.stack(t, "")                 // st-5: neither: not listed
		azure := f.stack(t, "team-a")  // st-6: azure, drifted
		f.driftRun(t, drifted.ID, driftPlan(t, "aws", map[string]string{"aws_s3_bucket.a": "dev"}), false)
		f.driftRun(t, clean.ID, driftPlan(t, "google", nil), false)
		f.driftRun(t, failed.ID, nil, true)
		if _, err := f.schedules.SetDrift(f.ctx, unchecked.ID, "alice", schedule.DriftSettings{Crons: []string{"@daily"}}); err != nil {
			t.Fatal(err)
		}
		f.driftRun(t, azure.ID, driftPlan(t, "azurerm", map[string]string{"azurerm_resource_group.rg": "dev", "azurerm_storage_account.sa": "x"}), false)

		ids := func(list []Status) []string {
			out := []string{}
			for _, s := range list {
				out = append(out, s.StackID)
			}
			return out
		}
		for _, tc := range []struct {
			name string
			f    Filter
			want []string
		}{
			{"all", Filter{}, []string{"st-1", "st-2", "st-3", "st-4", "st-6"}},
			{"aws", Filter{Cloud: "aws"}, []string{"st-1"}},
			{"azure", Filter{Cloud: "azure"}, []string{"st-6"}},
			{"google", Filter{Cloud: "google"}, []string{"st-2"}},
			{"other cloud", Filter{Cloud: "oracle"}, []string{}},
			{"space", Filter{Space: "team-a"}, []string{"st-2", "st-3", "st-6"}},
			{"space root", Filter{Space: "root"}, []string{"st-1", "st-4"}},
			{"readable spaces", Filter{Spaces: []string{"root"}}, []string{"st-1", "st-4"}},
			{"no readable space", Filter{Spaces: []string{}}, []string{}},
			{"drifted", Filter{Status: OutcomeDrifted}, []string{"st-1", "st-6"}},
			{"clean", Filter{Status: OutcomeClean}, []string{"st-2"}},
			{"failed", Filter{Status: OutcomeFailed}, []string{"st-3"}},
			{"unchecked", Filter{Status: "unchecked"}, []string{"st-4"}},
			{"drifted in team-a on azure", Filter{Status: OutcomeDrifted, Space: "team-a", Cloud: "azure"}, []string{"st-6"}},
		} {
			list, next, err := f.drift.List(f.ctx, tc.f)
			if err != nil {
				t.Fatalf("%s: %v", tc.name, err)
			}
			if got := ids(list); !reflect.DeepEqual(got, tc.want) || next != "" {
				t.Errorf("%s: %v (next %q), want %v", tc.name, got, next, tc.want)
			}
		}
		for _, bad := range []Filter{{Status: "weird"}, {Cloud: "aws%"}, {Cloud: `aws"`}} {
			if _, _, err := f.drift.List(f.ctx, bad); !errs.Is(err, errs.Invalid) {
				t.Errorf("List(%+v): %v, want invalid", bad, err)
			}
		}

		// The statuses as listed.
		list, _, _ := f.drift.List(f.ctx, Filter{})
		want := map[string]struct {
			status  string
			drifted int
			sched   bool
		}{"st-1": {OutcomeDrifted, 1, false}, "st-2": {OutcomeClean, 0, false}, "st-3": {OutcomeFailed, 0, false}, "st-4": {"unchecked", 0, true}, "st-6": {OutcomeDrifted, 2, false}}
		for _, s := range list {
			w := want[s.StackID]
			if s.Status != w.status || s.Drifted != w.drifted || s.Scheduled != w.sched || s.StackName != s.StackID {
				t.Errorf("%s: %+v, want %+v", s.StackID, s, w)
			}
		}

		// Pages by cursor.
		var all []string
		cursor := ""
		for pages := 0; ; pages++ {
			if pages > 5 {
				t.Fatal("paging does not end")
			}
			list, next, err := f.drift.List(f.ctx, Filter{Limit: 2, Cursor: cursor})
			if err != nil {
				t.Fatal(err)
			}
			if len(list) > 2 {
				t.Fatalf("page of %d, limit 2", len(list))
			}
			all = append(all, ids(list)...)
			if next == "" {
				break
			}
			cursor = next
		}
		if !reflect.DeepEqual(all, []string{"st-1", "st-2", "st-3", "st-4", "st-6"}) {
			t.Errorf("pages gave %v", all)
		}

		// Metrics: open drift per stack and cloud; the last good check and
		// whether the last one failed.
		metrics, err := f.drift.Metrics(f.ctx)
		if err != nil {
			t.Fatal(err)
		}
		got := map[string]map[string]int{}
		for _, m := range metrics {
			got[m.StackID] = m.ByCloud
			if failed := m.StackID == "st-3"; m.LastFailed != failed || m.LastGoodAt.IsZero() != failed || m.LastCheckedAt.IsZero() {
				t.Errorf("metrics of %s: %+v", m.StackID, m)
			}
		}
		wantM := map[string]map[string]int{"st-1": {"aws": 1}, "st-2": {"google": 0}, "st-3": {}, "st-6": {"azure": 2}}
		if !reflect.DeepEqual(got, wantM) {
			t.Errorf("metrics %v, want %v", got, wantM)
		}
	})
}

func TestReconcile(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, d *db.DB) {
		f := newFixture(t, d)
		st := f.stack(t, "")
		const a, b = "aws_s3_bucket.a", "aws_s3_bucket.b"
		f.driftRun(t, st.ID, driftPlan(t, "aws", map[string]string{a: "dev", b: "dev"}), false)
		f.driftRun(t, st.ID, driftPlan(t, "aws", map[string]string{a: "dev"}), false) // b resolved

		for _, targets := range [][]string{{"aws_s3_bucket.nope"}, {b}, {a, b}} {
			_, err := f.drift.Reconcile(f.ctx, st.ID, "alice", run.Creator{}, targets)
			if !errs.Is(err, errs.Invalid) || !strings.Contains(err.Error(), "no open drift") {
				t.Errorf("Reconcile(%v): %v, want refused: no open drift", targets, err)
			}
		}
		r, err := f.drift.Reconcile(f.ctx, st.ID, "alice", run.Creator{}, []string{a})
		if err != nil {
			t.Fatal(err)
		}
		if r.Type != run.Tracked || !reflect.DeepEqual(r.Targets, []string{a}) || r.TriggeredBy != "alice" || r.Drift {
			t.Fatalf("reconcile run %+v", r)
		}
		all, err := f.drift.Reconcile(f.ctx, st.ID, "alice", run.Creator{}, nil)
		if err != nil || all.Type != run.Tracked || len(all.Targets) != 0 {
			t.Fatalf("Reconcile(all) = %+v, %v", all, err)
		}
	})
}

func TestScheduledReconciliation(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, d *db.DB) {
		f := newFixture(t, d)
		tracked := func(stackID string) []run.Run {
			list, _, err := f.runs.List(f.ctx, run.Filter{Stack: stackID, Type: run.Tracked, Limit: 100})
			if err != nil {
				t.Fatal(err)
			}
			return list
		}
		on, off := f.stack(t, ""), f.stack(t, "")
		for st, reconcile := range map[string]bool{on.ID: true, off.ID: false} {
			if _, err := f.schedules.SetDrift(f.ctx, st, "alice", schedule.DriftSettings{Crons: []string{"@daily"}, Reconcile: reconcile}); err != nil {
				t.Fatal(err)
			}
		}
		// Clean: nothing to reconcile.
		f.driftRun(t, on.ID, driftPlan(t, "aws", nil), false)
		if n := len(tracked(on.ID)); n != 0 {
			t.Fatalf("%d tracked runs after a clean check", n)
		}
		// Drifted: one tracked run puts it back, naming what drifted.
		dr := f.driftRun(t, on.ID, driftPlan(t, "aws", map[string]string{"aws_s3_bucket.a": "dev"}), false)
		list := tracked(on.ID)
		if len(list) != 1 || list[0].TriggeredBy != schedule.TriggerDrift {
			t.Fatalf("tracked runs after drift with reconcile on: %+v", list)
		}
		trs, err := f.runs.Transitions(f.ctx, list[0].ID)
		if err != nil || len(trs) == 0 || !strings.Contains(trs[0].Reason, dr.ID) || !strings.Contains(trs[0].Reason, "aws_s3_bucket.a") {
			t.Fatalf("reconcile run's reason %+v, %v; want it to name %s and the resource", trs, err, dr.ID)
		}
		f.driftRun(t, off.ID, driftPlan(t, "aws", map[string]string{"aws_s3_bucket.a": "dev"}), false)
		if n := len(tracked(off.ID)); n != 0 {
			t.Fatalf("%d tracked runs with reconcile off", n)
		}
	})
}

// The drift records never hold a sensitive value, in the database either.
func TestRecordsHideSensitiveValues(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, d *db.DB) {
		f := newFixture(t, d)
		st := f.stack(t, "")
		f.driftRun(t, st.ID, readPlan(t, "drift_plan.json"), false)
		got := f.show(t, st.ID)
		out, _ := json.Marshal(got)
		if strings.Contains(string(out), "SECRET") {
			t.Fatalf("Show holds a secret: %s", out)
		}
		var rows []string
		r, err := d.Query(f.ctx, `SELECT attributes FROM drift_resources WHERE stack_id = $1`, st.ID)
		if err != nil {
			t.Fatal(err)
		}
		for r.Next() {
			var s string
			if err := r.Scan(&s); err != nil {
				t.Fatal(err)
			}
			rows = append(rows, s)
		}
		r.Close()
		if len(rows) != 3 || strings.Contains(strings.Join(rows, "\n"), "SECRET") {
			t.Fatalf("stored attributes: %v", rows)
		}
		if !reflect.DeepEqual(got.Status.Clouds, []string{"aws", "azure", "google", "random"}) {
			t.Errorf("clouds %v", got.Status.Clouds)
		}
	})
}

// A drift detection run canceled before it ran is no check: the stack stays
// as its last check left it.
func TestCanceledDriftRunIsNoCheck(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, d *db.DB) {
		f := newFixture(t, d)
		st := f.stack(t, "")
		r, err := f.runs.Create(f.ctx, run.New{StackID: st.ID, Type: run.Proposed, Drift: true, TriggeredBy: schedule.TriggerDrift})
		if err != nil {
			t.Fatal(err)
		}
		if r, err = f.runs.Cancel(f.ctx, r.ID, "api_key::ops"); err != nil || r.State != run.Canceled {
			t.Fatalf("Cancel: %v, %+v", err, r)
		}
		if s := f.show(t, st.ID).Status; s.Status != "unchecked" || s.LastRunID != "" {
			t.Fatalf("after a canceled drift run: %+v, want unchecked", s)
		}
	})
}

// ensurePool makes the row of worker pool id in space spaceID ("" for
// root) unless it exists: a stack names only a pool that exists.
func ensurePool(t *testing.T, d *db.DB, id, spaceID string) {
	t.Helper()
	if id == "" {
		return
	}
	if spaceID == "" {
		spaceID = "root"
	}
	if _, err := d.Exec(context.Background(), `INSERT INTO worker_pools (id, name, space_id, token_hash, created_at, updated_at)
		VALUES ($1, $1, $2, '', 1, 1) ON CONFLICT (id) DO NOTHING`, id, spaceID); err != nil {
		t.Fatalf("pool %s: %v", id, err)
	}
}
