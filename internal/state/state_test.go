package state_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"math"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gantry-iac/gantry/internal/db"
	"github.com/gantry-iac/gantry/internal/db/dbtest"
	"github.com/gantry-iac/gantry/internal/errs"
	"github.com/gantry-iac/gantry/internal/events"
	"github.com/gantry-iac/gantry/internal/run"
	"github.com/gantry-iac/gantry/internal/secrets"
	"github.com/gantry-iac/gantry/internal/space"
	"github.com/gantry-iac/gantry/internal/stack"
	"github.com/gantry-iac/gantry/internal/state"
)

func TestMain(m *testing.M) { dbtest.Main(m) }

const lineage = "5e7a0b1c-lineage"

// fixture holds the services of one database and one stack, "app".
type fixture struct {
	ctx    context.Context
	d      *db.DB
	stacks *stack.Service
	runs   *run.Service
	states *state.Service
}

func newFixture(t *testing.T, d *db.DB) *fixture {
	t.Helper()
	box, err := secrets.NewBox(bytes.Repeat([]byte{1}, 32))
	if err != nil {
		t.Fatal(err)
	}
	f := &fixture{
		ctx: context.Background(), d: d, stacks: stack.NewService(d, box),
		runs:   run.NewService(d, events.NewHub(), box, slog.New(slog.DiscardHandler)),
		states: state.NewService(d, box),
	}
	if err := space.NewService(d).EnsureRoot(f.ctx); err != nil {
		t.Fatal(err)
	}
	f.stack(t, "app")
	return f
}

func (f *fixture) stack(t *testing.T, id string) {
	t.Helper()
	if _, err := f.stacks.Create(f.ctx, stack.Stack{ID: id, Repository: "https://example.com/infra.git"}); err != nil {
		t.Fatalf("create stack %s: %v", id, err)
	}
}

// doc returns a state document as OpenTofu writes it.
func doc(serial int64, lin, resource string) []byte {
	return []byte(fmt.Sprintf(`{
  "version": 4,
  "terraform_version": "1.10.7",
  "serial": %d,
  "lineage": %q,
  "outputs": {"password": {"value": "hunter2-%s", "type": "string", "sensitive": true}},
  "resources": [{"mode": "managed", "type": "null_resource", "name": %q, "instances": [{"attributes": {"id": "4242", "price": 1.10}}]}],
  "check_results": null
}
`, serial, lin, resource, resource))
}

func (f *fixture) write(t *testing.T, data []byte, lockID string) state.Version {
	t.Helper()
	v, err := f.states.Write(f.ctx, "app", data, lockID, "", "tofu")
	if err != nil {
		t.Fatalf("Write: %v", err)
	}
	return v
}

func (f *fixture) serials(t *testing.T) []int64 {
	t.Helper()
	vs, err := f.states.Versions(f.ctx, "app")
	if err != nil {
		t.Fatal(err)
	}
	out := []int64{}
	for _, v := range vs {
		out = append(out, v.Serial)
	}
	return out
}

func wantKind(t *testing.T, err error, k errs.Kind) {
	t.Helper()
	if !errs.Is(err, k) {
		t.Fatalf("error = %v (kind %s), want kind %s", err, errs.KindOf(err), k)
	}
}

func TestWrite(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, d *db.DB) {
		f := newFixture(t, d)
		_, _, err := f.states.Current(f.ctx, "app")
		wantKind(t, err, errs.NotFound)

		first := doc(1, lineage, "a")
		v1, err := f.states.Write(f.ctx, "app", first, "", "run-1", "worker:w")
		if err != nil {
			t.Fatalf("first Write: %v", err)
		}
		if v1.Serial != 1 || v1.Lineage != lineage || v1.Size != int64(len(first)) || v1.RunID != "run-1" || v1.CreatedBy != "worker:w" || len(v1.Checksum) != 64 {
			t.Fatalf("first version = %+v", v1)
		}
		again, err := f.states.Write(f.ctx, "app", first, "", "run-2", "someone else")
		if err != nil {
			t.Fatalf("same version again: %v", err)
		}
		if again.RunID != "run-1" || again.Checksum != v1.Checksum || !reflect.DeepEqual(f.serials(t), []int64{1}) {
			t.Fatalf("writing the same version again stored something: %+v, serials %v", again, f.serials(t))
		}

		f.write(t, doc(2, lineage, "b"), "")
		f.write(t, doc(5, lineage, "c"), "") // serials may jump

		refused := []struct {
			name string
			data []byte
			kind errs.Kind
			msg  string // the public message, if set
		}{
			{"stale serial", doc(4, lineage, "d"), errs.Conflict, ""},
			{"much older serial", doc(1, lineage, "a"), errs.Conflict, ""},
			{"other lineage", doc(6, "another-lineage", "d"), errs.Conflict, ""},
			{"same serial, other content", doc(5, lineage, "changed"), errs.Conflict, ""},
			{"not JSON", []byte("not json"), errs.Invalid, ""},
			{"JSON array", []byte("[1,2]"), errs.Invalid, "the state must be a JSON object, got array"},
			{"JSON string", []byte(`"state"`), errs.Invalid, "the state must be a JSON object, got string"},
			{"no serial", []byte(`{"version":4,"lineage":"x"}`), errs.Invalid, ""},
			{"no lineage", []byte(`{"version":4,"serial":7}`), errs.Invalid, ""},
			{"empty lineage", []byte(`{"version":4,"serial":7,"lineage":""}`), errs.Invalid, ""},
			{"negative serial", []byte(`{"version":4,"serial":-7,"lineage":"x"}`), errs.Invalid, "state serial must be a non-negative integer, got -7"},
			{"fractional serial", []byte(`{"version":4,"serial":1.5,"lineage":"x"}`), errs.Invalid, "state serial must be a non-negative integer, got number 1.5"},
			{"string serial", []byte(`{"version":4,"serial":"1","lineage":"x"}`), errs.Invalid, "state serial must be a non-negative integer, got string"},
			{"numeric lineage", []byte(`{"version":4,"serial":1,"lineage":5}`), errs.Invalid, `state field "lineage" must be a string, got number`},
		}
		for _, r := range refused {
			_, err := f.states.Write(f.ctx, "app", r.data, "", "", "tofu")
			if !errs.Is(err, r.kind) {
				t.Errorf("%s: Write = %v, want kind %s", r.name, err, r.kind)
			}
			if r.msg != "" && errs.Public(err) != r.msg {
				t.Errorf("%s: message %q, want %q", r.name, errs.Public(err), r.msg)
			}
		}
		if got := f.serials(t); !reflect.DeepEqual(got, []int64{5, 2, 1}) {
			t.Fatalf("Versions serials = %v, want [5 2 1] (newest first)", got)
		}
		_, err = f.states.Write(f.ctx, "missing", doc(1, lineage, "a"), "", "", "tofu")
		wantKind(t, err, errs.NotFound)
	})
}

func TestGetDecryptsAndStoresEncrypted(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, d *db.DB) {
		f := newFixture(t, d)
		docs := map[int64][]byte{1: doc(1, lineage, "one"), 2: doc(2, lineage, "two")}
		f.write(t, docs[1], "")
		f.write(t, docs[2], "")

		cur, data, err := f.states.Current(f.ctx, "app")
		if err != nil || cur.Serial != 2 || !bytes.Equal(data, docs[2]) {
			t.Fatalf("Current = %+v %q %v", cur, data, err)
		}
		for serial, want := range docs {
			v, data, err := f.states.Get(f.ctx, "app", serial)
			if err != nil || v.Serial != serial || !bytes.Equal(data, want) {
				t.Fatalf("Get(%d) = %+v %q %v", serial, v, data, err)
			}
			var raw []byte
			if err := d.QueryRow(f.ctx, `SELECT data FROM state_versions WHERE stack_id = 'app' AND serial = $1`, serial).Scan(&raw); err != nil {
				t.Fatal(err)
			}
			if bytes.Contains(raw, []byte("hunter2")) || bytes.Contains(raw, []byte(lineage)) {
				t.Fatalf("state %d is stored in clear", serial)
			}
		}
		_, _, err = f.states.Get(f.ctx, "app", 3)
		wantKind(t, err, errs.NotFound)

		// A sealed document is bound to its serial: swapped, it does not open.
		if _, err := d.Exec(f.ctx, `UPDATE state_versions SET data = (SELECT data FROM state_versions WHERE stack_id = 'app' AND serial = 1) WHERE stack_id = 'app' AND serial = 2`); err != nil {
			t.Fatal(err)
		}
		_, _, err = f.states.Current(f.ctx, "app")
		wantKind(t, err, errs.Internal)

		vs, err := f.states.Versions(f.ctx, "app")
		if err != nil || len(vs) != 2 || vs[0].Serial != 2 || vs[1].Serial != 1 || vs[0].CreatedBy != "tofu" {
			t.Fatalf("Versions = %+v %v", vs, err)
		}
		if vs, err := f.states.Versions(f.ctx, "missing"); err != nil || len(vs) != 0 {
			t.Fatalf("Versions(missing) = %+v %v", vs, err)
		}
	})
}

func lockInfo(id, who string) state.LockInfo {
	return state.LockInfo{ID: id, Operation: "OperationTypeApply", Who: who, Version: "1.10.7", Created: "2026-01-02T03:04:05Z", Path: "app.tfstate", Info: `with "quotes"`}
}

func TestLocks(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, d *db.DB) {
		f := newFixture(t, d)
		_, err := f.states.Lock(f.ctx, "app")
		wantKind(t, err, errs.NotFound)
		wantKind(t, f.states.Acquire(f.ctx, "app", state.LockInfo{Who: "x"}, ""), errs.Invalid)

		holder := lockInfo("lock-1", "alice@laptop")
		if err := f.states.Acquire(f.ctx, "app", holder, ""); err != nil {
			t.Fatalf("Acquire: %v", err)
		}
		if err := f.states.Acquire(f.ctx, "app", holder, ""); err != nil {
			t.Fatalf("Acquire again with the same ID: %v", err)
		}
		if got, err := f.states.Lock(f.ctx, "app"); err != nil || got != holder {
			t.Fatalf("Lock = %+v %v, want %+v", got, err, holder)
		}

		err = f.states.Acquire(f.ctx, "app", lockInfo("lock-2", "bob@ci"), "")
		wantKind(t, err, errs.Locked)
		if got, ok := errs.DetailOf(err).(state.LockInfo); !ok || got != holder {
			t.Fatalf("Locked detail = %#v, want the holder's %+v", errs.DetailOf(err), holder)
		}

		// Writes: without the lock or with another lock ID refused.
		for _, lockID := range []string{"", "lock-2"} {
			_, err := f.states.Write(f.ctx, "app", doc(1, lineage, "a"), lockID, "", "tofu")
			wantKind(t, err, errs.Locked)
			if got, _ := errs.DetailOf(err).(state.LockInfo); got != holder {
				t.Fatalf("Write with lock %q: detail %#v", lockID, errs.DetailOf(err))
			}
		}
		if got := f.serials(t); len(got) != 0 {
			t.Fatalf("refused writes stored %v", got)
		}
		f.write(t, doc(1, lineage, "a"), "lock-1")

		wantKind(t, f.states.Release(f.ctx, "app", "lock-2", ""), errs.Locked)
		if err := f.states.Release(f.ctx, "app", "lock-1", ""); err != nil {
			t.Fatalf("Release: %v", err)
		}
		if err := f.states.Release(f.ctx, "app", "lock-1", ""); err != nil {
			t.Fatalf("Release of an unlocked state: %v", err)
		}
		_, err = f.states.Lock(f.ctx, "app")
		wantKind(t, err, errs.NotFound)
		// Unlocked, anyone may write, with or without a lock ID.
		f.write(t, doc(2, lineage, "b"), "")
		f.write(t, doc(3, lineage, "c"), "stale-lock-id")
		if err := f.states.Acquire(f.ctx, "app", lockInfo("lock-2", "bob@ci"), ""); err != nil {
			t.Fatalf("Acquire after release: %v", err)
		}
		wantKind(t, f.states.Acquire(f.ctx, "missing", lockInfo("lock-3", "x"), ""), errs.NotFound)
	})
}

func TestReleaseRun(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, d *db.DB) {
		f := newFixture(t, d)
		for _, id := range []string{"b", "c", "e"} {
			f.stack(t, id)
		}
		locks := []struct{ stack, lock, run string }{
			{"app", "l-app", "run-1"},
			{"b", "l-b", "run-1"},
			{"c", "l-c", "run-2"},
			{"e", "l-e", ""}, // a person's lock
		}
		for _, l := range locks {
			if err := f.states.Acquire(f.ctx, l.stack, lockInfo(l.lock, "w"), l.run); err != nil {
				t.Fatalf("Acquire(%s): %v", l.stack, err)
			}
		}
		if err := f.states.ReleaseRun(f.ctx, "run-1"); err != nil {
			t.Fatalf("ReleaseRun: %v", err)
		}
		for _, l := range locks {
			_, err := f.states.Lock(f.ctx, l.stack)
			if l.run == "run-1" {
				wantKind(t, err, errs.NotFound)
			} else if err != nil {
				t.Fatalf("lock of %s (run %q) was released: %v", l.stack, l.run, err)
			}
		}
		if err := f.states.ReleaseRun(f.ctx, "run-unknown"); err != nil {
			t.Fatalf("ReleaseRun of a run without locks: %v", err)
		}
	})
}

// A run releases only the lock it holds itself, even knowing another's
// lock ID; a person may release any lock by its ID.
func TestReleaseByRun(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, d *db.DB) {
		f := newFixture(t, d)
		f.stack(t, "b")
		if err := f.states.Acquire(f.ctx, "app", lockInfo("l-app", "w"), "run-1"); err != nil {
			t.Fatal(err)
		}
		if err := f.states.Acquire(f.ctx, "b", lockInfo("l-b", "w"), ""); err != nil {
			t.Fatal(err)
		}
		wantKind(t, f.states.Release(f.ctx, "app", "l-app", "run-2"), errs.Forbidden)
		wantKind(t, f.states.Release(f.ctx, "b", "l-b", "run-1"), errs.Forbidden)
		wantKind(t, f.states.Release(f.ctx, "app", "l-other", "run-1"), errs.Locked)
		if err := f.states.Release(f.ctx, "app", "l-app", "run-1"); err != nil {
			t.Fatalf("a run releasing its own lock: %v", err)
		}
		if err := f.states.Release(f.ctx, "b", "l-b", ""); err != nil {
			t.Fatalf("a person releasing a lock: %v", err)
		}
		for _, st := range []string{"app", "b"} {
			_, err := f.states.Lock(f.ctx, st)
			wantKind(t, err, errs.NotFound)
		}
	})
}

// Release with no lock ID (Terraform's force-unlock) releases whatever
// lock is held, under the same rules: a run only its own.
func TestReleaseWithoutID(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, d *db.DB) {
		f := newFixture(t, d)
		if err := f.states.Release(f.ctx, "app", "", ""); err != nil {
			t.Fatalf("Release without an ID of an unlocked state: %v", err)
		}
		if err := f.states.Acquire(f.ctx, "app", lockInfo("l-run", "w"), "run-1"); err != nil {
			t.Fatal(err)
		}
		wantKind(t, f.states.Release(f.ctx, "app", "", "run-2"), errs.Forbidden)
		if err := f.states.Release(f.ctx, "app", "", "run-1"); err != nil {
			t.Fatalf("a run releasing its own lock without an ID: %v", err)
		}
		if err := f.states.Acquire(f.ctx, "app", lockInfo("l-person", "w"), ""); err != nil {
			t.Fatal(err)
		}
		wantKind(t, f.states.Release(f.ctx, "app", "", "run-1"), errs.Forbidden)
		if err := f.states.Release(f.ctx, "app", "", ""); err != nil {
			t.Fatalf("a person releasing a lock without an ID: %v", err)
		}
		_, err := f.states.Lock(f.ctx, "app")
		wantKind(t, err, errs.NotFound)
	})
}

// TestAcquireConcurrently: lockers racing for a free state get one winner;
// every other gets Locked with the winner's lock info, as OpenTofu expects
// (it reports who holds the lock on 423), not an internal error.
func TestAcquireConcurrently(t *testing.T) {
	const lockers, rounds = 6, 15
	dbtest.Each(t, func(t *testing.T, d *db.DB) {
		f := newFixture(t, d)
		for round := 0; round < rounds; round++ {
			var wg sync.WaitGroup
			errc := make([]error, lockers)
			start := make(chan struct{})
			for i := range lockers {
				wg.Add(1)
				go func() {
					defer wg.Done()
					<-start
					errc[i] = f.states.Acquire(f.ctx, "app", lockInfo(fmt.Sprintf("lock-%d-%d", round, i), "w"), "")
				}()
			}
			close(start)
			wg.Wait()
			holder, err := f.states.Lock(f.ctx, "app")
			if err != nil {
				t.Fatalf("round %d: no lock after the race: %v", round, err)
			}
			won := 0
			for i, err := range errc {
				switch {
				case err == nil:
					won++
					if want := fmt.Sprintf("lock-%d-%d", round, i); holder.ID != want {
						t.Fatalf("round %d: locker %d succeeded but the lock is %s", round, i, holder.ID)
					}
				case errs.Is(err, errs.Locked):
					if got, ok := errs.DetailOf(err).(state.LockInfo); !ok || got != holder {
						t.Fatalf("round %d: locker %d got Locked with detail %#v, want the holder's lock info %+v", round, i, errs.DetailOf(err), holder)
					}
				default:
					t.Fatalf("round %d: locker %d got %v (kind %s), want Locked", round, i, err, errs.KindOf(err))
				}
			}
			if won != 1 {
				t.Fatalf("round %d: %d lockers won", round, won)
			}
			if err := f.states.Release(f.ctx, "app", holder.ID, ""); err != nil {
				t.Fatal(err)
			}
		}
	})
}

func TestRollback(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, d *db.DB) {
		f := newFixture(t, d)
		_, err := f.states.Rollback(f.ctx, "app", 1, "alice")
		wantKind(t, err, errs.NotFound)
		if _, _, err := f.states.Current(f.ctx, "app"); errs.Public(err) != "stack app has no state yet" {
			t.Errorf("Current without state: %v", err)
		}
		if _, _, err := f.states.Get(f.ctx, "app", 4); errs.Public(err) != "stack app has no state version 4" {
			t.Errorf("Get of a missing version: %v", err)
		}
		f.write(t, doc(1, lineage, "one"), "")
		f.write(t, doc(2, lineage, "two"), "")
		f.write(t, doc(3, lineage, "three"), "")

		_, err = f.states.Rollback(f.ctx, "app", 3, "alice")
		wantKind(t, err, errs.Conflict) // already current
		_, err = f.states.Rollback(f.ctx, "app", 9, "alice")
		wantKind(t, err, errs.NotFound)

		// Refused while a run is in progress.
		r, err := f.runs.Create(f.ctx, run.New{StackID: "app", TriggeredBy: "alice"})
		if err != nil {
			t.Fatal(err)
		}
		_, err = f.states.Rollback(f.ctx, "app", 1, "alice")
		wantKind(t, err, errs.Conflict)
		if _, err := f.runs.Cancel(f.ctx, r.ID, "alice"); err != nil {
			t.Fatal(err)
		}
		// Refused while the state is locked.
		if err := f.states.Acquire(f.ctx, "app", lockInfo("l", "bob"), ""); err != nil {
			t.Fatal(err)
		}
		_, err = f.states.Rollback(f.ctx, "app", 1, "alice")
		wantKind(t, err, errs.Locked)
		if err := f.states.Release(f.ctx, "app", "l", ""); err != nil {
			t.Fatal(err)
		}
		if got := f.serials(t); !reflect.DeepEqual(got, []int64{3, 2, 1}) {
			t.Fatalf("refused rollbacks stored versions: %v", got)
		}

		v, err := f.states.Rollback(f.ctx, "app", 1, "alice")
		if err != nil {
			t.Fatalf("Rollback: %v", err)
		}
		if v.Serial != 4 || v.Lineage != lineage || !strings.Contains(v.CreatedBy, "alice") {
			t.Fatalf("rollback version = %+v", v)
		}
		cur, data, err := f.states.Current(f.ctx, "app")
		if err != nil || cur.Serial != 4 || cur.Checksum != v.Checksum || cur.Size != int64(len(data)) {
			t.Fatalf("Current after rollback = %+v, %v", cur, err)
		}
		var got, want map[string]any
		if err := json.Unmarshal(data, &got); err != nil {
			t.Fatalf("rolled-back state is not JSON: %v\n%s", err, data)
		}
		if err := json.Unmarshal(doc(1, lineage, "one"), &want); err != nil {
			t.Fatal(err)
		}
		if got["serial"] != float64(4) {
			t.Fatalf("rolled-back serial = %v, want 4", got["serial"])
		}
		delete(got, "serial")
		delete(want, "serial")
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("rolled-back document differs from version 1 beyond the serial:\n got %v\nwant %v", got, want)
		}
		if !bytes.Contains(data, []byte(`"price": 1.10`)) {
			t.Errorf("numbers were rewritten by the rollback:\n%s", data)
		}

		// OpenTofu's next write, on top of the rolled-back state, works.
		next := doc(5, lineage, "one-more")
		if _, err := f.states.Write(f.ctx, "app", next, "", "", "tofu"); err != nil {
			t.Fatalf("Write after rollback: %v", err)
		}
		_, err = f.states.Write(f.ctx, "app", doc(4, lineage, "stale"), "", "", "tofu")
		wantKind(t, err, errs.Conflict)
		if got := f.serials(t); !reflect.DeepEqual(got, []int64{5, 4, 3, 2, 1}) {
			t.Fatalf("serials = %v", got)
		}
	})
}

// encryptedDoc is a state as OpenTofu writes it with client-side state
// encryption: serial and lineage in clear, the state itself (with the same
// serial) inside encrypted_data.
func encryptedDoc(serial int64, lin string) []byte {
	return []byte(fmt.Sprintf(`{"serial":%d,"lineage":%q,"meta":{"key_provider.pbkdf2.k":"eyJzYWx0IjoiVkVsY2d4Y0dadkhMaTRxSFJBOSs2WDZlS3JiTnoxMStYcE9LOExkQU8vZz0iLCJpdGVyYXRpb25zIjo2MDAwMDAsImhhc2hfZnVuY3Rpb24iOiJzaGE1MTIiLCJrZXlfbGVuZ3RoIjozMn0="},"encrypted_data":"1qt4ubJaY+1e9mhWIeePbfmVLmUET1/OI6jDWLmE059aO2WhVG0Hneceuyg/Kr9jkyWKg7Nlc7FErdqkdvOFdvw=","encryption_version":"v0"}`, serial, lin))
}

// A rollback rewrites the serial of the document it brings back; in a
// client-side encrypted document the serial OpenTofu checks is inside the
// ciphertext, so rolling back to one is refused (rolling back from one is
// not: only the target is rewritten).
func TestRollbackEncrypted(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, d *db.DB) {
		f := newFixture(t, d)
		f.write(t, doc(1, lineage, "plain"), "")
		f.write(t, encryptedDoc(2, lineage), "")
		f.write(t, encryptedDoc(3, lineage), "")

		_, err := f.states.Rollback(f.ctx, "app", 2, "alice")
		wantKind(t, err, errs.Conflict)
		for _, want := range []string{"version 2", "encrypted", "gantry stack state show --id app --serial 2", "tofu state push"} {
			if !strings.Contains(errs.Public(err), want) {
				t.Errorf("message %q does not say %q", errs.Public(err), want)
			}
		}
		if got := f.serials(t); !reflect.DeepEqual(got, []int64{3, 2, 1}) {
			t.Fatalf("the refused rollback stored versions: %v", got)
		}

		v, err := f.states.Rollback(f.ctx, "app", 1, "alice")
		if err != nil {
			t.Fatalf("rollback from an encrypted state to a plain one: %v", err)
		}
		if v.Serial != 4 {
			t.Fatalf("rollback version = %+v, want serial 4", v)
		}
	})
}

// The rolled-back version takes the current serial plus one: at the
// largest serial there is none, and the rollback is refused rather than
// stored with a serial that wrapped around.
func TestRollbackAtLargestSerial(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, d *db.DB) {
		f := newFixture(t, d)
		f.write(t, doc(1, lineage, "one"), "")
		f.write(t, doc(math.MaxInt64, lineage, "last"), "")
		_, err := f.states.Rollback(f.ctx, "app", 1, "alice")
		wantKind(t, err, errs.Conflict)
		if !strings.Contains(errs.Public(err), "9223372036854775807") {
			t.Errorf("message %q does not name the serial", errs.Public(err))
		}
		if got := f.serials(t); !reflect.DeepEqual(got, []int64{math.MaxInt64, 1}) {
			t.Fatalf("serials = %v, want the refused rollback to store nothing", got)
		}
	})
}

// Concurrent first writes of different lineages (two OpenTofu processes,
// or replicas, starting a stack's state at once): one is stored, every
// other one is refused for its lineage. On PostgreSQL each transaction
// would otherwise see no state yet and store its own lineage.
func TestConcurrentFirstWrites(t *testing.T) {
	const writers, stacks = 20, 4
	dbtest.Each(t, func(t *testing.T, d *db.DB) {
		f := newFixture(t, d)
		for n := range stacks {
			id := fmt.Sprintf("first-%d", n)
			f.stack(t, id)
			var wg sync.WaitGroup
			errc := make([]error, writers)
			start := make(chan struct{})
			for i := range writers {
				wg.Add(1)
				go func() {
					defer wg.Done()
					<-start
					_, errc[i] = f.states.Write(f.ctx, id, doc(int64(i+1), fmt.Sprintf("lineage-%d", i), "a"), "", "", "tofu")
				}()
			}
			close(start)
			wg.Wait()
			won := 0
			for i, err := range errc {
				switch {
				case err == nil:
					won++
				case !errs.Is(err, errs.Conflict):
					t.Fatalf("stack %s: writer %d got %v (kind %s), want success or Conflict", id, i, err, errs.KindOf(err))
				}
			}
			vs, err := f.states.Versions(f.ctx, id)
			if err != nil {
				t.Fatal(err)
			}
			if won != 1 || len(vs) != 1 {
				var got []string
				for _, v := range vs {
					got = append(got, fmt.Sprintf("%d/%s", v.Serial, v.Lineage))
				}
				t.Fatalf("stack %s: %d writers succeeded and %d versions were stored (%v), want one of each", id, won, len(vs), got)
			}
		}
	})
}

// A rollback and a run created at the same time: the rollback (refused
// while the stack has a run in progress) either sees the run or ends
// before it exists. Here the run's creation is held open, uncommitted,
// until the rollback waits for it.
func TestRollbackWhileRunCreated(t *testing.T) {
	for _, typ := range []string{run.Tracked, run.Proposed} {
		t.Run(typ, func(t *testing.T) {
			dbtest.Each(t, func(t *testing.T, d *db.DB) {
				f := newFixture(t, d)
				f.write(t, doc(1, lineage, "one"), "")
				f.write(t, doc(2, lineage, "two"), "")

				created := make(chan error, 1)
				commit := make(chan struct{})
				txDone := make(chan error, 1)
				go func() {
					txDone <- d.Tx(f.ctx, func(ctx context.Context) error {
						_, err := f.runs.Create(ctx, run.New{StackID: "app", Type: typ, TriggeredBy: "alice"})
						created <- err
						<-commit
						return err
					})
				}()
				if err := <-created; err != nil {
					close(commit)
					t.Fatalf("Create: %v", err)
				}
				rolledBack := make(chan error, 1)
				go func() {
					_, err := f.states.Rollback(f.ctx, "app", 1, "bob")
					rolledBack <- err
				}()
				// Let the run's transaction commit once the rollback waits for
				// it (or has answered, wrongly, without waiting).
				select {
				case err := <-rolledBack:
					close(commit)
					<-txDone
					t.Fatalf("Rollback answered %v while a run was being created, without waiting for it", err)
				case <-waitingForLock(t, d):
				}
				close(commit)
				if err := <-txDone; err != nil {
					t.Fatal(err)
				}
				wantKind(t, <-rolledBack, errs.Conflict)
				if got := f.serials(t); !reflect.DeepEqual(got, []int64{2, 1}) {
					t.Fatalf("serials = %v, want no rollback stored", got)
				}
			})
		})
	}
}

// waitingForLock is closed once a statement of d waits for a lock another
// transaction holds. On SQLite, whose single writer a transaction holds
// whole, it is closed at once: nothing else can run before it commits.
func waitingForLock(t *testing.T, d *db.DB) <-chan struct{} {
	t.Helper()
	done := make(chan struct{})
	if d.Dialect != db.Postgres {
		close(done)
		return done
	}
	go func() {
		defer close(done)
		deadline := time.Now().Add(10 * time.Second)
		for time.Now().Before(deadline) {
			var n int
			err := d.QueryRow(context.Background(), `SELECT COUNT(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'`).Scan(&n)
			if err != nil || n > 0 {
				return
			}
			time.Sleep(10 * time.Millisecond)
		}
	}()
	return done
}

// A lock a run holds is that run's: its ID (shown in every 423) does not
// let a person or another run write or lock under it. A person writes only
// after force-unlocking it (Release with the ID, stack:unlock at the API).
func TestLockHeldByRun(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, d *db.DB) {
		f := newFixture(t, d)
		held := lockInfo("l-run", "worker@host")
		if err := f.states.Acquire(f.ctx, "app", held, "run-1"); err != nil {
			t.Fatal(err)
		}
		for _, who := range []struct{ run, want string }{{"", "force-unlock"}, {"run-2", "not by run run-2"}} {
			_, err := f.states.Write(f.ctx, "app", doc(1, lineage, "a"), "l-run", who.run, "someone")
			wantKind(t, err, errs.Locked)
			if got, _ := errs.DetailOf(err).(state.LockInfo); got != held {
				t.Errorf("write by %q: detail %#v, want the holder's lock info", who.run, errs.DetailOf(err))
			}
			if msg := errs.Public(err); !strings.Contains(msg, "run-1") || !strings.Contains(msg, who.want) {
				t.Errorf("write by %q: message %q, want it to name run-1 and say %q", who.run, msg, who.want)
			}
			wantKind(t, f.states.Acquire(f.ctx, "app", held, who.run), errs.Locked)
		}
		if got := f.serials(t); len(got) != 0 {
			t.Fatalf("refused writes stored %v", got)
		}
		if err := f.states.Acquire(f.ctx, "app", held, "run-1"); err != nil {
			t.Fatalf("the run locking again: %v", err)
		}
		if _, err := f.states.Write(f.ctx, "app", doc(1, lineage, "a"), "l-run", "run-1", "run"); err != nil {
			t.Fatalf("the run's own write: %v", err)
		}
		// Force-unlocked by a person, the state takes the person's writes.
		if err := f.states.Release(f.ctx, "app", "l-run", ""); err != nil {
			t.Fatalf("force-unlock: %v", err)
		}
		f.write(t, doc(2, lineage, "b"), "")

		// A person's lock is not a run's to write under either.
		if err := f.states.Acquire(f.ctx, "app", lockInfo("l-person", "alice"), ""); err != nil {
			t.Fatal(err)
		}
		_, err := f.states.Write(f.ctx, "app", doc(3, lineage, "c"), "l-person", "run-1", "run")
		wantKind(t, err, errs.Locked)
		f.write(t, doc(3, lineage, "c"), "l-person")
	})
}

// CurrentUpTo gives the current version and its document in one query
// when the document is at most max bytes, and only its size past that.
func TestCurrentUpTo(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, d *db.DB) {
		f := newFixture(t, d)
		if _, _, err := f.states.CurrentUpTo(f.ctx, "app", 1<<20); !errs.Is(err, errs.NotFound) {
			t.Fatalf("CurrentUpTo without state = %v, want NotFound", err)
		}
		f.write(t, doc(1, "lin", "a"), "")
		want := doc(2, "lin", "b")
		f.write(t, want, "")
		v, data, err := f.states.CurrentUpTo(f.ctx, "app", int64(len(want)))
		if err != nil || v.Serial != 2 || !bytes.Equal(data, want) {
			t.Fatalf("CurrentUpTo(its size) = serial %d, %q, %v; want serial 2 and its document", v.Serial, data, err)
		}
		v, data, err = f.states.CurrentUpTo(f.ctx, "app", int64(len(want))-1)
		if err != nil || v.Serial != 2 || data != nil || v.Size != int64(len(want)) {
			t.Fatalf("CurrentUpTo(one byte less) = serial %d, size %d, %d bytes, %v; want serial 2, its size, no document", v.Serial, v.Size, len(data), err)
		}
	})
}
