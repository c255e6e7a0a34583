package audit_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gantry-iac/gantry/internal/audit"
	"github.com/gantry-iac/gantry/internal/db"
	"github.com/gantry-iac/gantry/internal/db/dbtest"
)

func TestMain(m *testing.M) { dbtest.Main(m) }

// record writes n events with actions stack.create, stack.update...
func record(t *testing.T, ctx context.Context, s *audit.Service, n int) []audit.Event {
	t.Helper()
	verbs := []string{"create", "update", "delete", "lock", "unlock"}
	var out []audit.Event
	for i := range n {
		ev, err := s.Record(ctx, audit.Event{Actor: "api_key::admin", Action: "stack." + verbs[i%len(verbs)],
			SubjectType: "stack", SubjectID: fmt.Sprintf("stk-%d", i), Space: "root"})
		if err != nil {
			t.Fatalf("Record %d: %v", i, err)
		}
		out = append(out, ev)
	}
	return out
}

func verify(t *testing.T, s *audit.Service) audit.Verification {
	t.Helper()
	v, err := s.Verify(context.Background())
	if err != nil {
		t.Fatalf("Verify: %v", err)
	}
	return v
}

func TestChain(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, d *db.DB) {
		ctx := context.Background()
		s := audit.NewService(d, nil)
		if v := verify(t, s); !v.OK || v.Checked != 0 || v.HeadSeq != 0 || v.HeadHash != audit.ZeroHash {
			t.Fatalf("empty trail: %+v", v)
		}
		evs := record(t, ctx, s, 5)
		prev := audit.ZeroHash
		for i, ev := range evs {
			if ev.Seq != int64(i+1) || ev.PrevHash != prev || ev.Hash != ev.ComputeHash() || len(ev.Hash) != 64 {
				t.Errorf("event %d: seq %d prev %s hash %s", i, ev.Seq, ev.PrevHash, ev.Hash)
			}
			if ev.Outcome != audit.Success || ev.Roles == nil || ev.At.IsZero() {
				t.Errorf("event %d not completed: %+v", i, ev)
			}
			prev = ev.Hash
		}
		v := verify(t, s)
		if !v.OK || v.Checked != 5 || v.HeadSeq != 5 || v.HeadHash != evs[4].Hash || v.BrokenAt != 0 {
			t.Fatalf("Verify = %+v", v)
		}
		// What was stored reads back identical, hash and all.
		got, next, err := s.List(ctx, audit.Filter{}, 0, 10)
		if err != nil || next != 0 || len(got) != 5 {
			t.Fatalf("List = %d events, next %d, %v", len(got), next, err)
		}
		for i, ev := range got {
			want := evs[4-i]
			if ev.Seq != want.Seq || !ev.At.Equal(want.At) || ev.Hash != want.Hash || ev.ComputeHash() != ev.Hash {
				t.Errorf("read back %+v, recorded %+v", ev, want)
			}
		}
	})
}

func TestTamper(t *testing.T) {
	tests := []struct {
		name   string
		sql    []string
		rehash bool // rewrite event 3 consistently: new action, its hash recomputed
		seq    int64
		reason string
	}{
		{"edit action of a middle row", []string{`UPDATE audit_events SET action = 'stack.read' WHERE seq = 3`}, false, 3, "hash mismatch"},
		{"edit change", []string{`UPDATE audit_events SET change = '{"after":{"x":1}}' WHERE seq = 2`}, false, 2, "hash mismatch"},
		{"edit and rehash (the next link breaks)", nil, true, 4, "prev_hash mismatch"},
		{"delete a middle row", []string{`DELETE FROM audit_events WHERE seq = 3`}, false, 3, "gap"},
		{"delete the last row", []string{`DELETE FROM audit_events WHERE seq = 5`}, false, 5, "gap"},
		{"delete the first row", []string{`DELETE FROM audit_events WHERE seq = 1`}, false, 1, "gap"},
		{"reorder two rows", []string{
			`UPDATE audit_events SET seq = 100 WHERE seq = 2`,
			`UPDATE audit_events SET seq = 2 WHERE seq = 3`,
			`UPDATE audit_events SET seq = 3 WHERE seq = 100`}, false, 2, "prev_hash mismatch"},
		{"renumber a row", []string{`UPDATE audit_events SET seq = 6 WHERE seq = 5`, `UPDATE audit_head SET seq = 6`}, false, 5, "gap"},
		{"rewrite the head", []string{`UPDATE audit_head SET hash = 'x'`}, false, 5, "head mismatch"},
		{"rewind the head", []string{`UPDATE audit_head SET seq = 3, hash = (SELECT hash FROM audit_events WHERE seq = 3)`}, false, 4, "events beyond the head"},
	}
	dbtest.Each(t, func(t *testing.T, d *db.DB) {
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				ctx := context.Background()
				if _, err := d.Exec(ctx, `DELETE FROM audit_events`); err != nil {
					t.Fatal(err)
				}
				if _, err := d.Exec(ctx, `UPDATE audit_head SET seq = 0, hash = $1`, audit.ZeroHash); err != nil {
					t.Fatal(err)
				}
				s := audit.NewService(d, nil)
				evs := record(t, ctx, s, 5)
				for _, q := range tt.sql {
					if _, err := d.Exec(ctx, q); err != nil {
						t.Fatalf("%s: %v", q, err)
					}
				}
				if tt.rehash {
					ev := evs[2]
					ev.Action = "stack.read"
					if _, err := d.Exec(ctx, `UPDATE audit_events SET action = $1, hash = $2 WHERE seq = 3`, ev.Action, ev.ComputeHash()); err != nil {
						t.Fatal(err)
					}
				}
				v := verify(t, s)
				if v.OK || v.BrokenAt != tt.seq || !strings.HasPrefix(v.Reason, tt.reason) {
					t.Fatalf("Verify = %+v, want broken at %d: %s", v, tt.seq, tt.reason)
				}
			})
		}
	})
}

func TestConcurrentRecord(t *testing.T) {
	const writers, each = 8, 15
	dbtest.Each(t, func(t *testing.T, d *db.DB) {
		s := audit.NewService(d, nil)
		ctx := context.Background()
		var wg sync.WaitGroup
		errc := make(chan error, writers*each)
		for w := range writers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range each {
					// Half inside a transaction that also writes something
					// else, half on their own.
					var err error
					if i%2 == 0 {
						err = d.Tx(ctx, func(ctx context.Context) error {
							if _, err := d.Exec(ctx, `INSERT INTO settings (name, value) VALUES ($1, 'v')`, fmt.Sprintf("w%d-%d", w, i)); err != nil {
								return err
							}
							_, err := s.Record(ctx, audit.Event{Action: "setting.create", SubjectID: fmt.Sprintf("w%d-%d", w, i)})
							return err
						})
					} else {
						_, err = s.Record(ctx, audit.Event{Actor: fmt.Sprintf("worker:w%d", w), Action: "worker.beat"})
					}
					if err != nil {
						errc <- err
					}
				}
			}()
		}
		wg.Wait()
		close(errc)
		for err := range errc {
			t.Fatalf("Record: %v", err)
		}
		v := verify(t, s)
		if !v.OK || v.Checked != writers*each || v.HeadSeq != writers*each {
			t.Fatalf("Verify = %+v, want %d events linked", v, writers*each)
		}
		n := 0
		if err := s.Each(ctx, audit.Filter{}, func(ev audit.Event) error {
			n++
			if ev.Seq != int64(n) {
				return fmt.Errorf("event %d has seq %d", n, ev.Seq)
			}
			return nil
		}); err != nil || n != writers*each {
			t.Fatalf("Each: %d events, %v", n, err)
		}
	})
}

func TestRollbackLeavesNoEvent(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, d *db.DB) {
		s := audit.NewService(d, nil)
		ctx := audit.WithRequest(context.Background(), audit.Request{Actor: "api_key::ci", SourceIP: "192.0.2.1", RequestID: "req-1"})
		boom := errors.New("boom")
		err := d.Tx(ctx, func(ctx context.Context) error {
			if _, err := s.Record(ctx, audit.Event{Action: "stack.delete", SubjectType: "stack", SubjectID: "a"}); err != nil {
				return err
			}
			return boom
		})
		if !errors.Is(err, boom) {
			t.Fatalf("Tx = %v", err)
		}
		if audit.Recorded(ctx) {
			t.Errorf("Recorded after a rollback")
		}
		if v := verify(t, s); !v.OK || v.HeadSeq != 0 || v.Checked != 0 {
			t.Fatalf("after rollback: %+v", v)
		}
		// Committed: the event is there, with the request's facts, and the
		// request knows it has its event.
		if err := d.Tx(ctx, func(ctx context.Context) error {
			_, err := s.Record(ctx, audit.Event{Action: "stack.delete", SubjectType: "stack", SubjectID: "a"})
			return err
		}); err != nil {
			t.Fatal(err)
		}
		if !audit.Recorded(ctx) {
			t.Errorf("not Recorded after a commit")
		}
		evs, _, err := s.List(context.Background(), audit.Filter{}, 0, 10)
		if err != nil || len(evs) != 1 {
			t.Fatalf("List = %v, %v", evs, err)
		}
		if ev := evs[0]; ev.Seq != 1 || ev.Actor != "api_key::ci" || ev.SourceIP != "192.0.2.1" || ev.RequestID != "req-1" {
			t.Errorf("event = %+v", ev)
		}
	})
}

func TestListFilters(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, d *db.DB) {
		ctx := context.Background()
		s := audit.NewService(d, nil)
		base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
		in := []audit.Event{
			{At: base, Actor: "api_key::a", Action: "stack.create", SubjectType: "stack", SubjectID: "s1", Space: "root"},
			{At: base.Add(time.Hour), Actor: "api_key::b", Action: "stack.update", SubjectType: "stack", SubjectID: "s1", Space: "root"},
			{At: base.Add(2 * time.Hour), Actor: "api_key::a", Action: "policy.create", SubjectType: "policy", SubjectID: "p1", Space: "prod"},
			{At: base.Add(3 * time.Hour), Actor: "unknown", Action: "auth.failed", Outcome: audit.Denied},
		}
		for _, ev := range in {
			if _, err := s.Record(ctx, ev); err != nil {
				t.Fatal(err)
			}
		}
		tests := []struct {
			f    audit.Filter
			want []int64
		}{
			{audit.Filter{}, []int64{4, 3, 2, 1}},
			{audit.Filter{Actor: "api_key::a"}, []int64{3, 1}},
			{audit.Filter{Action: "stack.*"}, []int64{2, 1}},
			{audit.Filter{Action: "stack.update"}, []int64{2}},
			{audit.Filter{Action: "stack."}, nil},
			{audit.Filter{SubjectType: "stack", SubjectID: "s1"}, []int64{2, 1}},
			{audit.Filter{Space: "prod"}, []int64{3}},
			{audit.Filter{Since: base.Add(time.Hour), Until: base.Add(3 * time.Hour)}, []int64{3, 2}},
		}
		for _, tt := range tests {
			evs, _, err := s.List(ctx, tt.f, 0, 100)
			if err != nil {
				t.Fatal(err)
			}
			var got []int64
			for _, ev := range evs {
				got = append(got, ev.Seq)
			}
			if fmt.Sprint(got) != fmt.Sprint(tt.want) {
				t.Errorf("List(%+v) = %v, want %v", tt.f, got, tt.want)
			}
		}
		// Pages: newest first, by cursor.
		page1, next, err := s.List(ctx, audit.Filter{}, 0, 3)
		if err != nil || len(page1) != 3 || next != 2 {
			t.Fatalf("page 1: %d, next %d, %v", len(page1), next, err)
		}
		page2, next, err := s.List(ctx, audit.Filter{}, next, 3)
		if err != nil || len(page2) != 1 || page2[0].Seq != 1 || next != 0 {
			t.Fatalf("page 2: %v, next %d, %v", page2, next, err)
		}
		if _, _, err := s.List(ctx, audit.Filter{}, 0, 0); err == nil {
			t.Errorf("limit 0 accepted")
		}
	})
}

func TestEachBatches(t *testing.T) {
	d := dbtest.SQLite(t)
	ctx := context.Background()
	s := audit.NewService(d, nil)
	const n = 1203
	if err := d.Tx(ctx, func(ctx context.Context) error {
		for range n {
			if _, err := s.Record(ctx, audit.Event{Action: "stack.create"}); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	var last int64
	if err := s.Each(ctx, audit.Filter{Action: "stack.create"}, func(ev audit.Event) error {
		if ev.Seq != last+1 {
			return fmt.Errorf("seq %d after %d", ev.Seq, last)
		}
		last = ev.Seq
		return nil
	}); err != nil || last != n {
		t.Fatalf("Each: last %d, %v", last, err)
	}
	if v := verify(t, s); !v.OK || v.Checked != n {
		t.Fatalf("Verify = %+v", v)
	}
}

func TestRecordValidates(t *testing.T) {
	d := dbtest.SQLite(t)
	s := audit.NewService(d, nil)
	ctx := context.Background()
	for _, ev := range []audit.Event{
		{Action: "create"},
		{Action: "Stack.Create"},
		{Action: "stack.create", Outcome: "maybe"},
		{Action: "stack.create", Change: json.RawMessage(`{"x":`)},
	} {
		if _, err := s.Record(ctx, ev); err == nil {
			t.Errorf("Record(%+v) accepted", ev)
		}
	}
	ev, err := s.Record(ctx, audit.Event{Action: "stack.create", Change: json.RawMessage("{ \"after\" : {\"a\": 1} }")})
	if err != nil || string(ev.Change) != `{"after":{"a":1}}` || ev.Actor != audit.System {
		t.Fatalf("Record = %+v, %v", ev, err)
	}
}

// TestHashEncoding pins the canonical encoding: external verifiers
// (docs/audit.md) depend on it.
func TestHashEncoding(t *testing.T) {
	ev := audit.Event{Seq: 1, At: time.Unix(0, 1767225600000000001), Actor: "api_key::admin", Roles: []string{},
		SourceIP: "192.0.2.1", RequestID: "req-1", Action: "stack.create", SubjectType: "stack", SubjectID: "network",
		Space: "root", Change: json.RawMessage(`{"after":{"name":"network"}}`), Outcome: "success", PrevHash: audit.ZeroHash}
	const want = "ee1ea2cf1605e72555c06cbe533300168bf263642d345f9cef5714c401619e26"
	if got := ev.ComputeHash(); got != want {
		t.Errorf("hash = %s, want %s", got, want)
	}
	// Every field counts.
	for i, mut := range []func(e *audit.Event){
		func(e *audit.Event) { e.Seq++ },
		func(e *audit.Event) { e.At = e.At.Add(1) },
		func(e *audit.Event) { e.Actor += "x" },
		func(e *audit.Event) { e.Roles = []string{"space-admin"} },
		func(e *audit.Event) { e.SourceIP = "" },
		func(e *audit.Event) { e.RequestID = "" },
		func(e *audit.Event) { e.Action = "stack.update" },
		func(e *audit.Event) { e.SubjectType = "" },
		func(e *audit.Event) { e.SubjectID = "networ" },
		func(e *audit.Event) { e.Space = "" },
		func(e *audit.Event) { e.Change = nil },
		func(e *audit.Event) { e.Outcome = "failed" },
		func(e *audit.Event) { e.PrevHash = strings.Repeat("1", 64) },
		// Moving bytes between fields changes the hash too.
		func(e *audit.Event) { e.SubjectType, e.SubjectID = "stackn", "etwork" },
	} {
		e := ev
		mut(&e)
		if e.ComputeHash() == ev.ComputeHash() {
			t.Errorf("mutation %d does not change the hash", i)
		}
	}
}

func TestNewChange(t *testing.T) {
	type env struct {
		Name   string `json:"name"`
		Value  string `json:"value"`
		Secret bool   `json:"secret"`
	}
	before := map[string]any{"name": "web", "token_hash": "abc", "env": []env{{"A", "1", false}, {"B", "hunter2", true}}}
	after := map[string]any{"name": "web2", "webhook": map[string]any{"secret": "s3cr3t", "url": "https://x"}, "password": ""}
	raw, err := audit.NewChange(before, after)
	if err != nil {
		t.Fatal(err)
	}
	s := string(raw)
	for _, leak := range []string{"abc", "hunter2", "s3cr3t"} {
		if strings.Contains(s, leak) {
			t.Errorf("change leaks %q: %s", leak, s)
		}
	}
	for _, keep := range []string{`"name":"web"`, `"name":"web2"`, `"value":"1"`, `"secret":true`, `"url":"https://x"`} {
		if !strings.Contains(s, keep) {
			t.Errorf("change lost %s: %s", keep, s)
		}
	}
	raw, err = audit.NewChange(nil, map[string]string{"id": "x"})
	if err != nil || string(raw) != `{"after":{"id":"x"}}` {
		t.Errorf("creation = %s, %v", raw, err)
	}
}

// Text a caller controls never keeps an event out of the trail (PostgreSQL
// refuses NUL and invalid UTF-8).
func TestRecordCleansText(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, d *db.DB) {
		s := audit.NewService(d, nil)
		ev, err := s.Record(context.Background(), audit.Event{Actor: "api_key::a\x00b", RequestID: "\xff\xfe", Action: "stack.create",
			SubjectType: "stack", SubjectID: "x\x00y\xc3", Space: "root"})
		if err != nil {
			t.Fatalf("Record: %v", err)
		}
		if ev.Actor != "api_key::ab" || strings.ContainsRune(ev.SubjectID, 0) {
			t.Fatalf("event = %+v", ev)
		}
		if v := verify(t, s); !v.OK {
			t.Fatalf("verify = %+v", v)
		}
	})
}

// A process moves the head it wrote last with one compare-and-set; a hint
// made stale by a rolled back transaction and by another replica's event
// at the same sequence number (another hash) must not be followed: the
// chain stays whole.
func TestStaleHeadHint(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, d *db.DB) {
		ctx := context.Background()
		a, b := audit.NewService(d, nil), audit.NewService(d, nil) // two replicas
		record := func(s *audit.Service, action string) {
			t.Helper()
			if _, err := s.Record(ctx, audit.Event{Action: action}); err != nil {
				t.Fatal(err)
			}
		}
		record(a, "test.first")
		// a writes seq 2 and rolls back: its hint names an event that
		// never was.
		boom := errors.New("boom")
		if err := d.Tx(ctx, func(ctx context.Context) error {
			if _, err := a.Record(ctx, audit.Event{Action: "test.rolled-back"}); err != nil {
				return err
			}
			return boom
		}); !errors.Is(err, boom) {
			t.Fatal(err)
		}
		record(b, "test.other-replica") // seq 2, another hash
		record(a, "test.after")         // must follow b's event
		record(a, "test.again")         // the fast path again
		v := verify(t, a)
		if !v.OK || v.Checked != 4 || v.HeadSeq != 4 {
			t.Fatalf("Verify = %+v, want 4 events linked", v)
		}
	})
}
