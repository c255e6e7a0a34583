package bench

import (
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gantry-iac/gantry/internal/apiv1"
)

// Targets of the issue.
const (
	targetE2ERatio    = 1.10
	targetDispatchP95 = 5 * time.Millisecond
	targetBurstRatio  = 1.20
	burstRuns         = 20
	burstWorkers      = 5
)

// deployment is one timed TRACKED run.
type deployment struct {
	run     apiv1.Run
	create  time.Duration // POST /stacks/{id}/runs answered
	client  time.Duration // creation sent to FINISHED seen by the client
	server  time.Duration // QUEUED.At to FINISHED.At
	started time.Time     // when the creation was sent
	seen    time.Time     // when the client saw it FINISHED
	cpuSelf time.Duration // CPU time of the server process meanwhile
	cpuKids time.Duration // CPU time of its children (git, tofu) meanwhile
}

// deploy creates a fresh autodeploy stack (untimed), then times a TRACKED
// run on it from the creation request until the client sees it FINISHED. A
// fresh stack has an empty state, so every run applies one resource, as
// the bare sequence does in its fresh directory.
func (s *server) deploy(tb testing.TB, stackID, repo string, every time.Duration) deployment {
	tb.Helper()
	s.createStack(tb, stackID, repo)
	var d deployment
	self0, kids0 := s.cpu(tb)
	ctx, cancel := callCtx()
	d.started = time.Now()
	created, err := s.api.CreateRun(ctx, stackID, apiv1.RunCreate{Type: apiv1.RunTracked})
	d.create = time.Since(d.started)
	cancel()
	if err != nil {
		tb.Fatalf("create run on %s: %v", stackID, err)
	}
	d.run, d.seen = s.waitRun(tb, created.ID, every)
	self1, kids1 := s.cpu(tb)
	d.cpuSelf, d.cpuKids = self1-self0, kids1-kids0
	s.mustFinish(tb, d.run)
	if d.run.Delta == nil || d.run.Delta.Add != 1 {
		tb.Fatalf("run %s planned %+v, want 1 to add", d.run.ID, d.run.Delta)
	}
	d.client = d.seen.Sub(d.started)
	d.server = between(d.run, apiv1.StateQueued, apiv1.StateFinished)
	return d
}

// segments are the consecutive steps of a tracked autodeploy run.
var segments = [][2]string{
	{apiv1.StateQueued, apiv1.StateReady},
	{apiv1.StateReady, apiv1.StatePreparing},
	{apiv1.StatePreparing, apiv1.StateInitializing},
	{apiv1.StateInitializing, apiv1.StatePlanning},
	{apiv1.StatePlanning, apiv1.StateConfirmed},
	{apiv1.StateConfirmed, apiv1.StateApplying},
	{apiv1.StateApplying, apiv1.StateFinished},
}

// segmentWork says what happens during each segment.
var segmentWork = []string{
	"promotion in the create transaction",
	"claim by an idle worker (dispatch)",
	"git clone + checkout, backend override",
	"tofu init (http backend)",
	"tofu plan + show -json + plan upload",
	"(same transaction)",
	"tofu apply (state lock/upload) + finish",
}

// BenchmarkRunEndToEnd times TRACKED runs of a one-terraform_data
// autodeploy stack from creation to FINISHED, against the bare OpenTofu
// sequence in a fresh directory, interleaved in the same benchmark.
func BenchmarkRunEndToEnd(b *testing.B) {
	eachBackend(b, func(b *testing.B, be backend) {
		n := envInt(b, "GANTRY_BENCH_E2E_RUNS", 30)
		every := pollEvery(b)
		tofu := tofuBinary(b)
		dbURL := be.dbURL(b)
		srv := startServer(b, serverConfig{bin: gantryBinary(b), dbURL: dbURL, workers: 2, path: filepath.Dir(tofu)})
		repo := makeRepo(b)
		bs := newBare(b, tofu)

		seq := 0
		deploy := func() deployment {
			seq++
			return srv.deploy(b, fmt.Sprintf("e2e-%03d", seq), repo, every)
		}
		for range 2 { // warm up caches, workers and the tool resolver
			deploy()
			bs.run(b)
		}
		var runs []deployment
		var bares []bareTimes
		pg0 := postgresCPU(dbURL)
		for i := range n {
			// Alternate the order so neither side always runs first.
			if i%2 == 0 {
				runs = append(runs, deploy())
				bares = append(bares, bs.run(b))
			} else {
				bares = append(bares, bs.run(b))
				runs = append(runs, deploy())
			}
		}

		pgPerRun := (postgresCPU(dbURL) - pg0) / time.Duration(n)

		// Why runs are not polled every few milliseconds: what that costs
		// the server (polling a finished run as one polls a running one).
		const pollProbe = 3 * time.Millisecond
		last := runs[len(runs)-1].run.ID
		idleSelf0, _ := srv.cpu(b)
		time.Sleep(2 * time.Second)
		idleSelf1, _ := srv.cpu(b)
		pollEnd := time.Now().Add(2 * time.Second)
		for time.Now().Before(pollEnd) {
			ctx, cancel := callCtx()
			if _, err := srv.api.GetRun(ctx, last); err != nil {
				b.Fatal(err)
			}
			cancel()
			time.Sleep(pollProbe)
		}
		pollSelf, _ := srv.cpu(b)
		idleCPU, pollCPU := (idleSelf1-idleSelf0)/2, (pollSelf-idleSelf1)/2

		var cl, sv, cr, bt, cpuSelf, cpuKids, cpuBare []time.Duration
		seg := make([][]time.Duration, len(segments))
		for _, d := range runs {
			cl, sv, cr = append(cl, d.client), append(sv, d.server), append(cr, d.create)
			cpuSelf, cpuKids = append(cpuSelf, d.cpuSelf), append(cpuKids, d.cpuKids)
			for i, s := range segments {
				seg[i] = append(seg[i], between(d.run, s[0], s[1]))
			}
		}
		var steps [4][]time.Duration
		for _, t := range bares {
			bt, cpuBare = append(bt, t.total), append(cpuBare, t.cpu)
			for i, d := range t.steps {
				steps[i] = append(steps[i], d)
			}
		}
		c, s, bb, create := summarize(cl), summarize(sv), summarize(bt), summarize(cr)
		ratioC := float64(c.p50) / float64(bb.p50)
		ratioS := float64(s.p50) / float64(bb.p50)

		note(b, "%d runs, end seen by %s; p50 / avg / min / max:", n, waitMethod(every))
		note(b, "  gantry client-observed  %s", fmtStats(c))
		note(b, "  gantry server-side      %s", fmtStats(s))
		note(b, "  bare sequence           %s", fmtStats(bb))
		note(b, "  create request (incl. git ls-remote) %s", fmtStats(create))
		note(b, "gantry run segments (p50, from transitions):")
		for i, sg := range segments {
			note(b, "  %-13s -> %-13s %8s  %s", sg[0], sg[1], ms(summarize(seg[i]).p50), segmentWork[i])
		}
		note(b, "bare steps (p50):")
		for i, st := range bareSteps {
			note(b, "  tofu %-28s %8s", strings.Join(st, " "), ms(summarize(steps[i]).p50))
		}
		note(b, "CPU time per run (avg): gantry server process %s + its git/tofu children %s%s; bare tofu %s",
			ms(summarize(cpuSelf).avg), ms(summarize(cpuKids).avg), pgNote(dbURL, pgPerRun), ms(summarize(cpuBare).avg))
		note(b, "server CPU: idle %s per second; polling GET /runs/{id} every %s would add %s per second",
			ms(idleCPU), pollProbe, ms(pollCPU-idleCPU))
		record(b, result{
			Target:   "1. run end to end, client-observed (" + be.name + ")",
			Measured: fmt.Sprintf("gantry %s / bare %s = %.2fx", ms(c.p50), ms(bb.p50), ratioC),
			Goal:     fmt.Sprintf("<= %.2fx", targetE2ERatio),
			Met:      ratioC <= targetE2ERatio,
		})
		record(b, result{
			Target:   "1. run end to end, server-side (" + be.name + ")",
			Measured: fmt.Sprintf("gantry %s / bare %s = %.2fx", ms(s.p50), ms(bb.p50), ratioS),
			Goal:     fmt.Sprintf("<= %.2fx", targetE2ERatio),
			Met:      ratioS <= targetE2ERatio,
		})
		b.ReportMetric(msf(c.p50), "gantry-ms")
		b.ReportMetric(msf(s.p50), "gantry-server-ms")
		b.ReportMetric(msf(bb.p50), "bare-ms")
		b.ReportMetric(ratioC, "ratio")
		hideNsPerOp(b)
	})
}

// pgNote tells the CPU time PostgreSQL used, if the server runs on it.
func pgNote(dbURL string, d time.Duration) string {
	if dbURL == "" || d < 0 || postgresCPU(dbURL) < 0 {
		return ""
	}
	return " + PostgreSQL " + ms(d)
}

func waitMethod(every time.Duration) string {
	if every > 0 {
		return "polling GET /runs/{id} every " + every.String()
	}
	return "long-polling the run's log"
}

func fmtStats(s stats) string {
	return fmt.Sprintf("%9s %9s %9s %9s", ms(s.p50), ms(s.avg), ms(s.min), ms(s.max))
}

// BenchmarkDispatch measures QUEUED to PREPARING (a worker has claimed the
// run) from the run's transitions, for PROPOSED runs created one at a time
// on idle workers: each run is created only after the previous one ended
// and the workers went back to waiting for a claim.
func BenchmarkDispatch(b *testing.B) {
	eachBackend(b, func(b *testing.B, be backend) {
		n := envInt(b, "GANTRY_BENCH_DISPATCH_RUNS", 100)
		tofu := tofuBinary(b)
		srv := startServer(b, serverConfig{bin: gantryBinary(b), dbURL: be.dbURL(b), workers: 2, path: filepath.Dir(tofu)})
		srv.createStack(b, "dispatch", makeRepo(b))
		var total, ready, claim []time.Duration
		for i := range n + 3 {
			ctx, cancel := callCtx()
			created, err := srv.api.CreateRun(ctx, "dispatch", apiv1.RunCreate{Type: apiv1.RunProposed})
			cancel()
			if err != nil {
				b.Fatalf("create proposed run: %v", err)
			}
			r, _ := srv.waitRun(b, created.ID, 0)
			srv.mustFinish(b, r)
			if i >= 3 { // the first runs warm up
				total = append(total, between(r, apiv1.StateQueued, apiv1.StatePreparing))
				ready = append(ready, between(r, apiv1.StateQueued, apiv1.StateReady))
				claim = append(claim, between(r, apiv1.StateReady, apiv1.StatePreparing))
			}
			time.Sleep(50 * time.Millisecond) // the workers wait in their claim again
		}
		t := summarize(total)
		note(b, "%d proposed runs on 2 idle workers:", n)
		note(b, "  QUEUED -> PREPARING  p50 %s  p95 %s  p99 %s  max %s", ms(t.p50), ms(t.p95), ms(t.p99), ms(t.max))
		r, c := summarize(ready), summarize(claim)
		note(b, "  QUEUED -> READY      p50 %s  p95 %s  max %s", ms(r.p50), ms(r.p95), ms(r.max))
		note(b, "  READY -> PREPARING   p50 %s  p95 %s  max %s", ms(c.p50), ms(c.p95), ms(c.max))
		record(b, result{
			Target:   "2. dispatch QUEUED->PREPARING (" + be.name + ")",
			Measured: fmt.Sprintf("p50 %s, p95 %s (n=%d)", ms(t.p50), ms(t.p95), t.n),
			Goal:     "p95 <= " + ms(targetDispatchP95),
			Met:      t.p95 <= targetDispatchP95,
		})
		b.ReportMetric(msf(t.p50), "p50-ms")
		b.ReportMetric(msf(t.p95), "p95-ms")
		hideNsPerOp(b)
	})
}

// BenchmarkBurst creates 20 runs on 20 autodeploy stacks at once on a
// server with 5 built-in workers and measures the makespan, from the first
// creation sent to the last FINISHED seen, against the bare sequence run
// 5-way parallel by `xargs -P5` over 20 fresh directories.
func BenchmarkBurst(b *testing.B) {
	eachBackend(b, func(b *testing.B, be backend) {
		reps := envInt(b, "GANTRY_BENCH_BURST_REPS", 5)
		tofu := tofuBinary(b)
		dbURL := be.dbURL(b)
		srv := startServer(b, serverConfig{bin: gantryBinary(b), dbURL: dbURL, workers: burstWorkers, path: filepath.Dir(tofu)})
		repo := makeRepo(b)
		bs := newBare(b, tofu)
		every := pollEvery(b)
		srv.deploy(b, "burst-warmup", repo, every)
		bs.run(b)
		bs.parallel(b, burstWorkers, burstWorkers)

		var gc, gs, bt []time.Duration
		var waits, durs []time.Duration
		var gSelf, gKids, gPG, bCPU time.Duration
		for rep := range reps {
			stacks := make([]string, burstRuns)
			for i := range stacks {
				stacks[i] = fmt.Sprintf("burst-%d-%02d", rep, i)
				srv.createStack(b, stacks[i], repo)
			}
			gantry := func() {
				self0, kids0, pg0 := srv.cpu2(b, dbURL)
				c, s, runs := srv.burst(b, stacks, every)
				self1, kids1, pg1 := srv.cpu2(b, dbURL)
				gSelf, gKids, gPG = gSelf+self1-self0, gKids+kids1-kids0, gPG+pg1-pg0
				gc, gs = append(gc, c), append(gs, s)
				for _, r := range runs {
					waits = append(waits, between(r, apiv1.StateQueued, apiv1.StatePreparing))
					durs = append(durs, between(r, apiv1.StatePreparing, apiv1.StateFinished))
				}
			}
			bare := func() {
				span, cpu := bs.parallel(b, burstRuns, burstWorkers)
				bt, bCPU = append(bt, span), bCPU+cpu
			}
			if rep%2 == 0 {
				gantry()
				bare()
			} else {
				bare()
				gantry()
			}
			note(b, "rep %d: gantry makespan %s (server-side %s), bare xargs -P%d %s", rep+1, ms(gc[rep]), ms(gs[rep]), burstWorkers, ms(bt[rep]))
		}
		c, s, bb := summarize(gc), summarize(gs), summarize(bt)
		ratioC := float64(c.p50) / float64(bb.p50)
		ratioS := float64(s.p50) / float64(bb.p50)
		w, d := summarize(waits), summarize(durs)
		note(b, "per run under the burst: QUEUED->PREPARING p50 %s max %s; PREPARING->FINISHED p50 %s max %s",
			ms(w.p50), ms(w.max), ms(d.p50), ms(d.max))
		perRun := time.Duration(reps * burstRuns)
		note(b, "CPU time per run: gantry server process %s + its git/tofu children %s%s; bare (xargs and tofu) %s",
			ms(gSelf/perRun), ms(gKids/perRun), pgNote(dbURL, gPG/perRun), ms(bCPU/perRun))
		record(b, result{
			Target:   "5. burst 20 runs / 5 workers, client (" + be.name + ")",
			Measured: fmt.Sprintf("gantry %s / bare %s = %.2fx", ms(c.p50), ms(bb.p50), ratioC),
			Goal:     fmt.Sprintf("<= %.2fx", targetBurstRatio),
			Met:      ratioC <= targetBurstRatio,
		})
		record(b, result{
			Target:   "5. burst 20 runs / 5 workers, server (" + be.name + ")",
			Measured: fmt.Sprintf("gantry %s / bare %s = %.2fx", ms(s.p50), ms(bb.p50), ratioS),
			Goal:     fmt.Sprintf("<= %.2fx", targetBurstRatio),
			Met:      ratioS <= targetBurstRatio,
		})
		b.ReportMetric(msf(c.p50), "gantry-ms")
		b.ReportMetric(msf(bb.p50), "bare-ms")
		b.ReportMetric(ratioC, "ratio")
		hideNsPerOp(b)
	})
}

// cpu2 is cpu with the CPU time of PostgreSQL (see postgresCPU).
func (s *server) cpu2(tb testing.TB, dbURL string) (self, children, pg time.Duration) {
	self, children = s.cpu(tb)
	return self, children, postgresCPU(dbURL)
}

// burst creates one TRACKED run on each stack at once and waits for all.
// It returns the client-observed makespan (first creation sent to the last
// FINISHED seen), the server-side one (first QUEUED to last FINISHED) and
// the runs.
func (s *server) burst(tb testing.TB, stacks []string, every time.Duration) (clientSpan, serverSpan time.Duration, runs []apiv1.Run) {
	tb.Helper()
	runs = make([]apiv1.Run, len(stacks))
	seen := make([]time.Time, len(stacks))
	errs := make([]error, len(stacks))
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i, st := range stacks {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			ctx, cancel := callCtx()
			r, err := s.api.CreateRun(ctx, st, apiv1.RunCreate{Type: apiv1.RunTracked})
			cancel()
			if err != nil {
				errs[i] = fmt.Errorf("create run on %s: %w", st, err)
				return
			}
			runs[i], seen[i], errs[i] = s.waitRunErr(r.ID, every)
		}()
	}
	t0 := time.Now()
	close(start)
	wg.Wait()
	var first, last, lastSeen time.Time
	for i, r := range runs {
		if errs[i] != nil {
			tb.Fatalf("%v\n%s", errs[i], s.logTail())
		}
		s.mustFinish(tb, r)
		q, _ := enteredAt(r, apiv1.StateQueued)
		f, _ := enteredAt(r, apiv1.StateFinished)
		if first.IsZero() || q.Before(first) {
			first = q
		}
		if f.After(last) {
			last = f
		}
		if seen[i].After(lastSeen) {
			lastSeen = seen[i]
		}
	}
	return lastSeen.Sub(t0), last.Sub(first), runs
}
