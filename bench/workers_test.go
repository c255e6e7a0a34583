package bench

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gantry-iac/gantry/internal/apiv1"
)

// Sizes of BenchmarkRemoteWorkers.
const (
	remoteWorkers = 4
	remoteStacks  = 50
	remotePool    = "bench-remote"
)

// BenchmarkRemoteWorkers runs PROPOSED runs through 4 private workers:
// separate `gantry worker` processes (--concurrency 1, --claim-wait 30s)
// talking real HTTP to a server with no built-in workers, with real
// OpenTofu on PATH and 50 stacks of the one-terraform_data configuration
// on the pool. Two phases:
//
//   - throughput: 500 runs (GANTRY_BENCH_REMOTE_RUNS) queued at once,
//     round-robin over the stacks; wall time from the first creation to the
//     last run ended, runs per minute, and from each run's transitions its
//     queue wait (READY to PREPARING, dominated by the queue: 4 workers for
//     500 runs) and the hand-over gap of each worker (its previous run ended
//     to its next claim: the worker's round trip and the server's claim
//     while runs wait). The server's CPU time and memory at the end.
//   - dispatch on idle workers: runs (GANTRY_BENCH_REMOTE_DISPATCH_RUNS)
//     created one at a time while all 4 workers wait in their claim long
//     poll, as BenchmarkDispatch does with built-in workers; READY to
//     PREPARING includes waking the waiting claim and answering it over
//     HTTP. Target: p95 <= 5 ms, BenchmarkDispatch's.
func BenchmarkRemoteWorkers(b *testing.B) {
	eachBackend(b, func(b *testing.B, be backend) {
		n := envInt(b, "GANTRY_BENCH_REMOTE_RUNS", 500)
		nIdle := envInt(b, "GANTRY_BENCH_REMOTE_DISPATCH_RUNS", 50)
		tofu := tofuBinary(b)
		bin := gantryBinary(b)
		dbURL := be.dbURL(b)
		srv := startServer(b, serverConfig{bin: bin, dbURL: dbURL, workers: 0, path: filepath.Dir(tofu)})

		ctx, cancel := callCtx()
		pool, err := srv.api.CreateWorkerPool(ctx, apiv1.WorkerPoolCreate{ID: remotePool, Space: "root"})
		cancel()
		if err != nil || pool.Token == "" {
			b.Fatalf("create worker pool: %v (token %q)", err, pool.Token)
		}
		var workers []*workerProc
		for i := range remoteWorkers {
			workers = append(workers, startWorker(b, bin, srv, fmt.Sprintf("w%d", i+1), pool.Token, filepath.Dir(tofu)))
		}
		srv.waitWorkers(b, workers)

		repo := makeRepo(b)
		stacks := make([]string, remoteStacks)
		for i := range stacks {
			stacks[i] = fmt.Sprintf("remote-%02d", i)
			ctx, cancel := callCtx()
			_, err := srv.api.CreateStack(ctx, apiv1.StackCreate{ID: stacks[i], Repository: repo, Branch: "main", WorkerPool: remotePool})
			cancel()
			if err != nil {
				b.Fatalf("create stack %s: %v", stacks[i], err)
			}
		}

		// Warm up every worker (git cache, tofu) with a small burst.
		warm := srv.queueRuns(b, stacks[:2*remoteWorkers], 2*remoteWorkers, workers)
		srv.waitRuns(b, warm.ids, workers)
		time.Sleep(time.Second) // the workers wait in their claim again

		// Phase 1: throughput.
		self0, kids0, pg0 := srv.cpu2(b, dbURL)
		w0 := workersCPU(b, workers)
		q := srv.queueRuns(b, stacks, n, workers)
		runs, seen := srv.waitRuns(b, q.ids, workers)
		self1, kids1, pg1 := srv.cpu2(b, dbURL)
		w1 := workersCPU(b, workers)
		rss, hwm := srv.memory(b)

		var first, last time.Time
		var queueWait, ready, claimToEnd []time.Duration
		byWorker := map[string][]apiv1.Run{}
		for _, r := range runs {
			srv.mustFinish(b, r)
			qa, _ := enteredAt(r, apiv1.StateQueued)
			end := r.Transitions[len(r.Transitions)-1].At
			if first.IsZero() || qa.Before(first) {
				first = qa
			}
			if end.After(last) {
				last = end
			}
			queueWait = append(queueWait, between(r, apiv1.StateReady, apiv1.StatePreparing))
			ready = append(ready, between(r, apiv1.StateQueued, apiv1.StateReady))
			claimToEnd = append(claimToEnd, between(r, apiv1.StatePreparing, apiv1.StateFinished))
			byWorker[claimer(r)] = append(byWorker[claimer(r)], r)
		}
		var lastSeen time.Time
		for _, t := range seen {
			if t.After(lastSeen) {
				lastSeen = t
			}
		}
		serverSpan, clientSpan := last.Sub(first), lastSeen.Sub(q.start)
		perMin := float64(n) / serverSpan.Minutes()
		clientPerMin := float64(n) / clientSpan.Minutes()

		// Hand-over: a worker's previous run ended (its last transition)
		// to the worker's next claim, or from the run's READY if that came
		// later (then nothing was waiting for the worker).
		var handover []time.Duration
		var perWorker []string
		for id, rs := range byWorker {
			slices.SortFunc(rs, func(a, c apiv1.Run) int {
				ta, _ := enteredAt(a, apiv1.StatePreparing)
				tc, _ := enteredAt(c, apiv1.StatePreparing)
				return ta.Compare(tc)
			})
			for i := 1; i < len(rs); i++ {
				prevEnd := rs[i-1].Transitions[len(rs[i-1].Transitions)-1].At
				rd, _ := enteredAt(rs[i], apiv1.StateReady)
				claimed, _ := enteredAt(rs[i], apiv1.StatePreparing)
				if rd.After(prevEnd) {
					prevEnd = rd
				}
				handover = append(handover, claimed.Sub(prevEnd))
			}
			perWorker = append(perWorker, fmt.Sprintf("%s %d", strings.TrimPrefix(id, "worker:"), len(rs)))
		}
		slices.Sort(perWorker)
		if len(byWorker) != remoteWorkers {
			b.Errorf("the runs went to %d workers, want %d: %v", len(byWorker), remoteWorkers, perWorker)
		}

		qw, rd, ce, ho, cr := summarize(queueWait), summarize(ready), summarize(claimToEnd), summarize(handover), summarize(q.create)
		perRun := time.Duration(n)
		srvCPU, kidsCPU, wCPU := self1-self0, kids1-kids0, w1.sub(w0)
		note(b, "%d PROPOSED runs on %d stacks queued at once (4 clients) through %d `gantry worker` processes (--concurrency 1):",
			n, remoteStacks, remoteWorkers)
		note(b, "  server-side first QUEUED -> last FINISHED %s = %.1f runs/min; client-observed (first creation sent -> last end seen) %s = %.1f runs/min",
			serverSpan.Round(time.Millisecond), perMin, clientSpan.Round(time.Millisecond), clientPerMin)
		note(b, "  creating the %d runs took %s (POST /runs p50 %s, p95 %s)", n, q.span.Round(time.Millisecond), ms(cr.p50), ms(cr.p95))
		note(b, "  runs per worker: %s", strings.Join(perWorker, ", "))
		note(b, "  QUEUED -> READY           p50 %s  p95 %s  max %s", ms(rd.p50), ms(rd.p95), ms(rd.max))
		note(b, "  READY -> PREPARING (queue wait) p50 %s  p95 %s  max %s", ms(qw.p50), ms(qw.p95), ms(qw.max))
		note(b, "  hand-over (worker's previous run ended -> its next claim) p50 %s  p95 %s  p99 %s  max %s (n=%d)",
			ms(ho.p50), ms(ho.p95), ms(ho.p99), ms(ho.max), ho.n)
		note(b, "  PREPARING -> FINISHED (the run on its worker) p50 %s  p95 %s  max %s", ms(ce.p50), ms(ce.p95), ms(ce.max))
		note(b, "  CPU time per run: server %s (+ its children, git ls-remote: %s)%s; workers %s + their git/tofu %s",
			ms(srvCPU/perRun), ms(kidsCPU/perRun), pgNote(dbURL, (pg1-pg0)/perRun), ms(wCPU.self/perRun), ms(wCPU.children/perRun))
		note(b, "  server CPU over the phase: %.2f s (%.0f%% of one CPU); memory at the end: VmRSS %.1f MiB, peak VmHWM %.1f MiB",
			srvCPU.Seconds(), 100*srvCPU.Seconds()/serverSpan.Seconds(), mib(rss), mib(hwm))
		record(b, result{
			Target:   fmt.Sprintf("6. remote: %d proposed runs / %d workers (%s)", n, remoteWorkers, be.name),
			Measured: fmt.Sprintf("%.1f runs/min (%s server-side; client %.1f/min)", perMin, serverSpan.Round(100*time.Millisecond), clientPerMin),
			Goal:     "none",
			Met:      true,
		})
		record(b, result{
			Target:   "6. remote: server CPU, RSS after the runs (" + be.name + ")",
			Measured: fmt.Sprintf("%.2f s CPU (%s/run), VmRSS %.1f MiB (peak %.1f)", srvCPU.Seconds(), ms(srvCPU/perRun), mib(rss), mib(hwm)),
			Goal:     "none",
			Met:      true,
		})
		record(b, result{
			Target:   "6. remote: queue wait READY->PREPARING, loaded (" + be.name + ")",
			Measured: fmt.Sprintf("p50 %s, p95 %s (n=%d)", ms(qw.p50), ms(qw.p95), qw.n),
			Goal:     "none",
			Met:      true,
		})
		record(b, result{
			Target:   "6. remote: hand-over run end->next claim, loaded (" + be.name + ")",
			Measured: fmt.Sprintf("p50 %s, p95 %s (n=%d)", ms(ho.p50), ms(ho.p95), ho.n),
			Goal:     "none",
			Met:      true,
		})

		// Phase 2: dispatch on idle workers, one run at a time.
		time.Sleep(time.Second)
		var total, claim []time.Duration
		for i := range nIdle + 3 {
			st := stacks[i%len(stacks)]
			ctx, cancel := callCtx()
			created, err := srv.api.CreateRun(ctx, st, apiv1.RunCreate{Type: apiv1.RunProposed})
			cancel()
			if err != nil {
				b.Fatalf("create proposed run on %s: %v", st, err)
			}
			rs, _ := srv.waitRuns(b, []string{created.ID}, workers)
			r := rs[0]
			srv.mustFinish(b, r)
			if i >= 3 {
				total = append(total, between(r, apiv1.StateQueued, apiv1.StatePreparing))
				claim = append(claim, between(r, apiv1.StateReady, apiv1.StatePreparing))
			}
			time.Sleep(50 * time.Millisecond) // the worker waits in its claim again
		}
		t, c := summarize(total), summarize(claim)
		note(b, "%d PROPOSED runs one at a time, the %d workers idle in their claim long poll:", nIdle, remoteWorkers)
		note(b, "  READY -> PREPARING    p50 %s  p95 %s  p99 %s  max %s", ms(c.p50), ms(c.p95), ms(c.p99), ms(c.max))
		note(b, "  QUEUED -> PREPARING   p50 %s  p95 %s  p99 %s  max %s", ms(t.p50), ms(t.p95), ms(t.p99), ms(t.max))
		record(b, result{
			Target:   "6. remote: dispatch READY->PREPARING, idle (" + be.name + ")",
			Measured: fmt.Sprintf("p50 %s, p95 %s (n=%d; QUEUED->: p95 %s)", ms(c.p50), ms(c.p95), c.n, ms(t.p95)),
			Goal:     "p95 <= " + ms(targetDispatchP95),
			Met:      c.p95 <= targetDispatchP95,
		})
		b.ReportMetric(perMin, "runs/min")
		b.ReportMetric(msf(c.p50), "idle-claim-p50-ms")
		b.ReportMetric(msf(c.p95), "idle-claim-p95-ms")
		b.ReportMetric(msf(ho.p95), "handover-p95-ms")
		b.ReportMetric(srvCPU.Seconds(), "server-cpu-s")
		b.ReportMetric(mib(rss), "rss-MiB")
		hideNsPerOp(b)
	})
}

// claimer is the actor of a run's PREPARING transition ("worker:<id>").
func claimer(r apiv1.Run) string {
	for _, t := range r.Transitions {
		if t.To == apiv1.StatePreparing {
			return t.Actor
		}
	}
	return ""
}

// workerProc is one `gantry worker` process.
type workerProc struct {
	name    string
	cmd     *exec.Cmd
	exited  chan struct{}
	logPath string
}

// startWorker starts `gantry worker` for the pool token against s, with
// toolDir (where tofu is) first on PATH, and stops it when tb ends: SIGTERM
// (it drains), SIGKILL after 30 seconds.
func startWorker(tb testing.TB, bin string, s *server, name, token, toolDir string) *workerProc {
	tb.Helper()
	dir := tb.TempDir()
	tmp := filepath.Join(dir, "tmp")
	if err := os.Mkdir(tmp, 0o700); err != nil {
		tb.Fatal(err)
	}
	w := &workerProc{name: name, exited: make(chan struct{}), logPath: filepath.Join(dir, "worker.log")}
	logFile, err := os.Create(w.logPath)
	if err != nil {
		tb.Fatal(err)
	}
	var env []string
	for _, kv := range serverEnv(serverConfig{path: toolDir}, tmp) {
		if !strings.HasPrefix(kv, "GANTRY_ADMIN_TOKEN=") {
			env = append(env, kv)
		}
	}
	w.cmd = exec.Command(bin, "worker", "--server", s.url, "--name", name, "--work-dir", filepath.Join(dir, "work"),
		"--concurrency", "1", "--claim-wait", "30s")
	w.cmd.Env = append(env, "GANTRY_TOKEN="+token)
	w.cmd.Stdout, w.cmd.Stderr = logFile, logFile
	w.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	err = w.cmd.Start()
	logFile.Close()
	if err != nil {
		tb.Fatalf("start gantry worker %s: %v", name, err)
	}
	go func() { _ = w.cmd.Wait(); close(w.exited) }()
	tb.Cleanup(func() {
		select {
		case <-w.exited:
		default:
			_ = w.cmd.Process.Signal(syscall.SIGTERM)
			select {
			case <-w.exited:
			case <-time.After(30 * time.Second):
				tb.Logf("gantry worker %s did not stop within 30s of SIGTERM; killing it", name)
				_ = w.cmd.Process.Kill()
				<-w.exited
			}
		}
		w.reportProblems(tb)
	})
	return w
}

func (w *workerProc) log() string {
	b, _ := os.ReadFile(w.logPath)
	return string(b)
}

// reportProblems prints the warnings and errors the worker logged.
func (w *workerProc) reportProblems(tb testing.TB) {
	tb.Helper()
	var problems []string
	for _, line := range strings.Split(w.log(), "\n") {
		if strings.Contains(line, "level=WARN") || strings.Contains(line, "level=ERROR") {
			problems = append(problems, line)
		}
	}
	if len(problems) == 0 {
		return
	}
	note(tb, "worker %s logged %d warnings or errors; the first:", w.name, len(problems))
	for _, p := range problems[:min(len(problems), 5)] {
		note(tb, "  %s", p)
	}
}

// workersLogTail is the end of every worker's log, for failure messages.
func workersLogTail(workers []*workerProc) string {
	var out strings.Builder
	for _, w := range workers {
		l := w.log()
		if len(l) > 2000 {
			l = "...\n" + l[len(l)-2000:]
		}
		fmt.Fprintf(&out, "--- worker %s:\n%s\n", w.name, l)
	}
	return out.String()
}

// waitWorkers waits until every worker registered in the benchmark's pool.
func (s *server) waitWorkers(tb testing.TB, workers []*workerProc) {
	tb.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		ctx, cancel := callCtx()
		list, err := s.api.ListWorkers(ctx, remotePool)
		cancel()
		if err != nil {
			tb.Fatalf("list workers: %v", err)
		}
		up := 0
		for _, w := range list.Items {
			if w.Status == apiv1.WorkerIdle {
				up++
			}
		}
		if up == len(workers) {
			return
		}
		for _, w := range workers {
			select {
			case <-w.exited:
				tb.Fatalf("gantry worker %s exited (%v):\n%s", w.name, w.cmd.ProcessState, w.log())
			default:
			}
		}
		if time.Now().After(deadline) {
			tb.Fatalf("%d of %d workers registered within a minute:\n%s", up, len(workers), workersLogTail(workers))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// queued is what queueRuns created.
type queued struct {
	ids    []string        // in creation order
	create []time.Duration // each POST /runs
	start  time.Time       // the first creation sent
	span   time.Duration   // until the last one answered
}

// queueRuns creates n PROPOSED runs round-robin over stacks, from 4
// concurrent clients, as fast as the server answers.
func (s *server) queueRuns(tb testing.TB, stacks []string, n int, workers []*workerProc) queued {
	tb.Helper()
	const clients = 4
	q := queued{ids: make([]string, n), create: make([]time.Duration, n)}
	errs := make([]error, n)
	next := make(chan int, n)
	for i := range n {
		next <- i
	}
	close(next)
	var wg sync.WaitGroup
	q.start = time.Now()
	for range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				ctx, cancel := callCtx()
				t := time.Now()
				r, err := s.api.CreateRun(ctx, stacks[i%len(stacks)], apiv1.RunCreate{Type: apiv1.RunProposed})
				q.create[i] = time.Since(t)
				cancel()
				q.ids[i], errs[i] = r.ID, err
			}
		}()
	}
	wg.Wait()
	q.span = time.Since(q.start)
	for i, err := range errs {
		if err != nil {
			tb.Fatalf("create proposed run %d on %s: %v\n%s", i, stacks[i%len(stacks)], err, s.logTail())
		}
	}
	return q
}

// waitRuns waits until every run is terminal, in order, and returns them
// with the time each was seen terminal. It long-polls each run's log, as
// waitRunErr does, without waitRunErr's 2-minute limit per run: a run
// behind 500 others waits longer than that. It gives up after an hour.
func (s *server) waitRuns(tb testing.TB, ids []string, workers []*workerProc) ([]apiv1.Run, []time.Time) {
	tb.Helper()
	runs, seen := make([]apiv1.Run, len(ids)), make([]time.Time, len(ids))
	deadline := time.Now().Add(time.Hour)
	for i, id := range ids {
		var offset int64
		for {
			ctx, cancel := callCtx()
			c, err := s.api.RunLogs(ctx, id, offset, 20*time.Second)
			offset = max(offset, c.NextOffset)
			now := time.Now()
			var r apiv1.Run
			if err == nil && c.Done {
				r, err = s.api.GetRun(ctx, id)
			}
			cancel()
			if err != nil {
				tb.Fatalf("waiting for run %s: %v\n%s", id, err, s.logTail())
			}
			if c.Done && terminal(r.State) {
				runs[i], seen[i] = r, now
				break
			}
			if now.After(deadline) {
				tb.Fatalf("run %s still not ended after an hour\n%s", id, workersLogTail(workers))
			}
			if c.Done { // the log said done but the run is not terminal: never busy-loop
				time.Sleep(time.Millisecond)
			}
		}
	}
	return runs, seen
}

// cpuTimes is CPU time, user + system.
type cpuTimes struct{ self, children time.Duration }

func (a cpuTimes) sub(b cpuTimes) cpuTimes {
	return cpuTimes{a.self - b.self, a.children - b.children}
}

// workersCPU sums the CPU time of the worker processes and of their
// children that ended (git, tofu).
func workersCPU(tb testing.TB, workers []*workerProc) cpuTimes {
	tb.Helper()
	var t cpuTimes
	for _, w := range workers {
		st, err := readStat(w.cmd.Process.Pid)
		if err != nil {
			tb.Fatalf("read the CPU time of worker %s: %v", w.name, err)
		}
		t.self += st.self
		t.children += st.children
	}
	return t
}
