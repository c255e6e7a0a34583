package bench

import (
	"context"
	"database/sql"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"math"
	"math/rand/v2"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // the "pgx" driver
	_ "modernc.org/sqlite"             // the "sqlite" driver
)

// seedSpec sizes a seeded store.
type seedSpec struct {
	spaces, stacks, runs int
}

// seeded says what was seeded, for choosing the requests to measure.
type seeded struct {
	spaces       []string
	stacks       []string // by id
	runs         []string // by id
	runsOf       map[string]int
	busiest      string // the stack with the most runs
	typical      string // a stack with the median number of runs
	transitions  int
	elapsed      time.Duration
	stateCounts  map[string]int
	labelExample string
}

var spaceNames = []string{"platform", "payments", "data", "identity", "search", "mobile", "web", "network", "security", "ml"}
var components = []string{"vpc", "dns", "cluster", "database", "cache", "queue", "buckets", "iam", "cdn", "monitoring", "secrets", "lambda"}
var envs = []string{"prod", "staging", "dev"}
var commitMessages = []string{
	"Bump module versions",
	"Add alarms for the queue depth",
	"Tighten the IAM policy of the deploy role",
	"Resize the cluster node group",
	"Rotate the TLS certificate",
	"Move the bucket lifecycle rules to a module",
	"Fix the DNS TTL of the API record",
	"Enable deletion protection",
}
var triggers = []string{"api_key::admin", "user:alice", "user:bob", "user:carol", "api_key::ci"}

// crockford is the alphabet of Gantry's sortable ids.
const crockford = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"

// sortableID makes an id of Gantry's format, prefix-<26 characters>: 48
// bits of unix milliseconds, then 80 random bits, in Crockford base32, so
// that ids sort by creation time like the server's.
func sortableID(prefix string, t time.Time, rng *rand.Rand) string {
	hi := uint64(t.UnixMilli())<<16 | uint64(rng.Uint32()&0xffff)
	lo := rng.Uint64()
	var out [26]byte
	for i := 25; i >= 0; i-- {
		out[i] = crockford[lo&31]
		lo = lo>>5 | hi<<59
		hi >>= 5
	}
	return prefix + "-" + string(out[:])
}

func randHex(rng *rand.Rand, n int) string {
	b := make([]byte, n)
	for i := 0; i < n; i += 8 {
		var w [8]byte
		binary.LittleEndian.PutUint64(w[:], rng.Uint64())
		copy(b[i:], w[:])
	}
	return hex.EncodeToString(b)
}

// inserter inserts rows with multi-row INSERT statements, many rows per
// statement, through one prepared statement per full batch.
type inserter struct {
	ctx     context.Context
	tx      *sql.Tx
	pg      bool
	table   string
	cols    []string
	perStmt int
	args    []any
	full    *sql.Stmt
	rows    int
}

func newInserter(ctx context.Context, tx *sql.Tx, pg bool, table string, cols []string, perStmt int) *inserter {
	return &inserter{ctx: ctx, tx: tx, pg: pg, table: table, cols: cols, perStmt: perStmt}
}

func (in *inserter) query(rows int) string {
	var b strings.Builder
	b.WriteString("INSERT INTO " + in.table + " (" + strings.Join(in.cols, ", ") + ") VALUES ")
	n := 0
	for r := range rows {
		if r > 0 {
			b.WriteByte(',')
		}
		b.WriteByte('(')
		for c := range in.cols {
			if c > 0 {
				b.WriteByte(',')
			}
			n++
			if in.pg {
				b.WriteString("$" + strconv.Itoa(n))
			} else {
				b.WriteByte('?')
			}
		}
		b.WriteByte(')')
	}
	return b.String()
}

// add queues a row; it reports whether that sent the queued rows.
func (in *inserter) add(vals ...any) (sent bool, err error) {
	if len(vals) != len(in.cols) {
		return false, fmt.Errorf("%s: %d values for %d columns", in.table, len(vals), len(in.cols))
	}
	in.args = append(in.args, vals...)
	in.rows++
	if len(in.args) < in.perStmt*len(in.cols) {
		return false, nil
	}
	if in.full == nil {
		st, err := in.tx.PrepareContext(in.ctx, in.query(in.perStmt))
		if err != nil {
			return false, fmt.Errorf("prepare insert into %s: %w", in.table, err)
		}
		in.full = st
	}
	if _, err := in.full.ExecContext(in.ctx, in.args...); err != nil {
		return false, fmt.Errorf("insert into %s: %w", in.table, err)
	}
	in.args = in.args[:0]
	return true, nil
}

func (in *inserter) close() error {
	if in.full != nil {
		defer in.full.Close()
	}
	if len(in.args) == 0 {
		return nil
	}
	if _, err := in.tx.ExecContext(in.ctx, in.query(len(in.args)/len(in.cols)), in.args...); err != nil {
		return fmt.Errorf("insert into %s: %w", in.table, err)
	}
	in.args = in.args[:0]
	return nil
}

// transition is one seeded timeline entry.
type seedTransition struct {
	to, actor, reason string
	after             time.Duration // since the previous entry
}

// runPath draws the life of one run: its type, final state and timeline.
func runPath(rng *rand.Rand, worker, trigger string) (typ, state string, path []seedTransition) {
	ms := func(lo, hi int) time.Duration {
		return time.Duration(lo+rng.IntN(hi-lo+1)) * time.Millisecond
	}
	wa := "worker:" + worker
	queueWait := ms(1, 5)
	if rng.IntN(10) == 0 {
		queueWait = ms(100, 60_000) // waited for a busy stack or worker
	}
	start := []seedTransition{
		{"QUEUED", trigger, "triggered by " + trigger, 0},
		{"READY", "gantry", "waiting for a worker", ms(0, 2)},
		{"PREPARING", wa, "claimed by worker " + worker, queueWait},
		{"INITIALIZING", wa, "", ms(200, 3000)},
	}
	u := rng.Float64()
	switch k := rng.IntN(100); {
	case k < 75 || k >= 98: // TRACKED, or DESTROY
		typ = "TRACKED"
		if k >= 98 {
			typ = "DESTROY"
		}
		plan := seedTransition{"PLANNING", wa, "", ms(1000, 20_000)}
		switch {
		case u < 0.70:
			return typ, "FINISHED", append(start, plan,
				seedTransition{"CONFIRMED", "gantry", "autodeploy", ms(2000, 90_000)},
				seedTransition{"APPLYING", wa, "applying in the workspace that planned", 0},
				seedTransition{"FINISHED", wa, "done", ms(5000, 300_000)})
		case u < 0.82:
			return typ, "FINISHED", append(start, plan, seedTransition{"FINISHED", wa, "no changes", ms(2000, 60_000)})
		case u < 0.92:
			return typ, "FAILED", append(start, plan, seedTransition{"FAILED", wa, "plan failed: tofu exited with code 1", ms(1000, 30_000)})
		case u < 0.97:
			return typ, "DISCARDED", append(start, plan,
				seedTransition{"UNCONFIRMED", wa, "waiting for confirmation", ms(2000, 60_000)},
				seedTransition{"DISCARDED", "user:alice", "discarded by user:alice", ms(60_000, 86_400_000)})
		default:
			return typ, "STOPPED", append(start, plan, seedTransition{"STOPPED", "user:bob", "stopped by user:bob", ms(1000, 60_000)})
		}
	case k < 97: // PROPOSED
		plan := seedTransition{"PLANNING", wa, "", ms(1000, 20_000)}
		if u < 0.92 {
			return "PROPOSED", "FINISHED", append(start, plan, seedTransition{"FINISHED", wa, "proposed run planned", ms(2000, 60_000)})
		}
		return "PROPOSED", "FAILED", append(start, plan, seedTransition{"FAILED", wa, "plan failed: tofu exited with code 1", ms(1000, 30_000)})
	default: // TASK
		perform := seedTransition{"PERFORMING", wa, "", ms(1000, 10_000)}
		if u < 0.9 {
			return "TASK", "FINISHED", append(start, perform, seedTransition{"FINISHED", wa, "done", ms(500, 30_000)})
		}
		return "TASK", "FAILED", append(start, perform, seedTransition{"FAILED", wa, "task command exited with code 1", ms(500, 30_000)})
	}
}

// seedStore inserts spaces, stacks, runs and their transitions into a
// migrated store (the server created the root space), in one transaction.
func seedStore(tb testing.TB, db *sql.DB, pg bool, spec seedSpec) seeded {
	tb.Helper()
	ctx := timeoutCtx(tb, 30*time.Minute)
	start := time.Now()
	rng := rand.New(rand.NewPCG(20251125, 1))
	now := time.Now()
	out := seeded{runsOf: map[string]int{}, stateCounts: map[string]int{}, labelExample: "env:prod"}

	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		tb.Fatal(err)
	}
	defer tx.Rollback()
	fail := func(err error) {
		if err != nil {
			tb.Fatalf("seed: %v", err)
		}
	}
	fail2 := func(_ bool, err error) { fail(err) }

	sp := newInserter(ctx, tx, pg, "spaces", []string{"id", "name", "parent_id", "inherit", "labels", "description", "created_at", "updated_at"}, 100)
	for i := range spec.spaces {
		name := spaceNames[i%len(spaceNames)]
		if i >= len(spaceNames) {
			name += "-" + strconv.Itoa(i)
		}
		t := now.Add(-400 * 24 * time.Hour).UnixNano()
		fail2(sp.add(name, strings.ToUpper(name[:1])+name[1:], "root", true, `["team:`+name+`"]`, "Stacks of the "+name+" team.", t, t))
		out.spaces = append(out.spaces, name)
	}
	fail(sp.close())

	stackCols := []string{"id", "name", "space_id", "repository", "branch", "project_root", "tool", "tool_version", "labels",
		"description", "autodeploy", "managed_state", "hooks", "worker_pool", "lock_version", "created_at", "updated_at"}
	st := newInserter(ctx, tx, pg, "stacks", stackCols, 500)
	for i := range spec.stacks {
		space := out.spaces[i%len(out.spaces)]
		comp := components[(i/len(out.spaces))%len(components)]
		env := envs[i%len(envs)]
		id := fmt.Sprintf("%s-%s-%s-%05d", space, comp, env, i)
		created := now.Add(-time.Duration(rng.Int64N(int64(365 * 24 * time.Hour)))).UnixNano()
		labels := fmt.Sprintf(`["env:%s","team:%s","tier:%d"]`, env, space, 1+i%3)
		hooks := `{}`
		if i%5 == 0 {
			hooks = `{"before_plan":["tflint --recursive"]}`
		}
		version := ""
		if i%4 == 0 {
			version = "1.10.7"
		}
		fail2(st.add(id, id, space, "https://git.example.com/"+space+"/infrastructure.git", "main",
			"stacks/"+comp+"/"+env, "opentofu", version, labels,
			fmt.Sprintf("The %s of the %s team in %s.", comp, space, env),
			i%4 != 0, true, hooks, "", 0, created, created))
		out.stacks = append(out.stacks, id)
	}
	fail(st.close())

	// Runs: creation times spread over the last 180 days, ids in time order,
	// more runs on some stacks than others (a power law: the busiest stack
	// gets a few hundred runs, the quietest a few).
	times := make([]int64, spec.runs)
	span := int64(180 * 24 * time.Hour)
	for i := range times {
		times[i] = now.Add(-time.Hour).UnixNano() - rng.Int64N(span)
	}
	slices.Sort(times)
	workers := make([]string, 4)
	for i := range workers {
		workers[i] = sortableID("wrk", now.Add(-200*24*time.Hour), rng)
	}
	runCols := []string{"id", "stack_id", "space_id", "type", "state", "blocking", "drift", "commit_sha", "commit_message", "triggered_by",
		"command", "has_delta", "delta_add", "delta_change", "delta_destroy", "has_changes", "reason", "worker_id",
		"job_token_hash", "heartbeat_at", "log_size", "created_at", "updated_at"}
	rn := newInserter(ctx, tx, pg, "runs", runCols, 500)
	tr := newInserter(ctx, tx, pg, "run_transitions", []string{"run_id", "seq", "from_state", "to_state", "at", "actor", "reason"}, 2000)
	// Transitions wait until their runs are in (the foreign key).
	var pending [][]any
	sendTransitions := func() {
		for _, row := range pending {
			fail2(tr.add(row...))
		}
		pending = pending[:0]
	}
	for i := range spec.runs {
		stackIdx := int(float64(spec.stacks) * math.Pow(rng.Float64(), 1.5))
		stackID, spaceID := out.stacks[stackIdx], out.spaces[stackIdx%len(out.spaces)]
		created := time.Unix(0, times[i])
		id := sortableID("run", created, rng)
		worker := workers[rng.IntN(len(workers))]
		trigger := triggers[rng.IntN(len(triggers))]
		typ, state, life := runPath(rng, worker, trigger)
		at := created
		from := ""
		for seq, t := range life {
			at = at.Add(t.after)
			pending = append(pending, []any{id, seq + 1, from, t.to, at.UnixNano(), t.actor, t.reason})
			from = t.to
		}
		planned := state != "STOPPED" && typ != "TASK"
		add, change, destroy := 0, 0, 0
		if planned {
			add, change, destroy = rng.IntN(4), rng.IntN(6), rng.IntN(2)
			if typ == "DESTROY" {
				add, change, destroy = 0, 0, 1+rng.IntN(20)
			}
		}
		hasChanges := planned && add+change+destroy > 0
		command := ""
		if typ == "TASK" {
			command = "tofu state list"
		}
		reason := ""
		if last := life[len(life)-1]; state != "FINISHED" || last.reason != "" {
			reason = last.reason
		}
		sent, err := rn.add(id, stackID, spaceID, typ, state, typ != "PROPOSED", false, randHex(rng, 20), commitMessages[rng.IntN(len(commitMessages))],
			trigger, command, planned, add, change, destroy, hasChanges, reason, worker, randHex(rng, 32),
			at.UnixNano(), 2000+rng.IntN(60_000), created.UnixNano(), at.UnixNano())
		fail(err)
		if sent {
			sendTransitions()
		}
		out.runs = append(out.runs, id)
		out.runsOf[stackID]++
		out.stateCounts[state]++
		out.transitions += len(life)
	}
	fail(rn.close())
	sendTransitions()
	fail(tr.close())
	fail(tx.Commit())

	out.elapsed = time.Since(start)
	slices.Sort(out.stacks)
	slices.Sort(out.runs)
	type count struct {
		id string
		n  int
	}
	var counts []count
	for _, s := range out.stacks {
		counts = append(counts, count{s, out.runsOf[s]})
	}
	slices.SortStableFunc(counts, func(a, b count) int { return b.n - a.n })
	out.busiest = counts[0].id
	out.typical = counts[len(counts)/2].id
	return out
}

var runIDRE = regexp.MustCompile(`^run-[0-9A-HJKMNP-TV-Z]{26}$`)

// TestSortableID checks that seeded ids look like the server's and sort by
// time (no server or database needed: this test always runs).
func TestSortableID(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	base := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	prev := ""
	for i := range 1000 {
		id := sortableID("run", base.Add(time.Duration(i)*time.Millisecond), rng)
		if !runIDRE.MatchString(id) {
			t.Fatalf("id %q does not look like run-<26 Crockford base32 characters>", id)
		}
		if id <= prev {
			t.Fatalf("id %q made after %q does not sort after it", id, prev)
		}
		prev = id
	}
}

// TestRunPath checks that every seeded run has 6 to 8 transitions and ends
// in the state it claims.
func TestRunPath(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for range 10000 {
		typ, state, life := runPath(rng, "wrk-x", "user:alice")
		if len(life) < 6 || len(life) > 8 {
			t.Fatalf("%s run ending %s has %d transitions, want 6 to 8", typ, state, len(life))
		}
		if life[0].to != "QUEUED" || life[len(life)-1].to != state {
			t.Fatalf("%s run path %v does not go from QUEUED to %s", typ, life, state)
		}
	}
}
