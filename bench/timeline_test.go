package bench

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gantry-iac/gantry/internal/apiv1"
)

// traceEvent is one traced invocation of git or tofu.
type traceEvent struct {
	start, end time.Time
	cpu        time.Duration // user + system CPU time of the command
	name       string        // "git clone", "tofu init", ...
}

// writeShim writes dir/name, a bash script that runs real with its
// arguments and appends "start end cpu name subcommand" to trace: the
// times from bash's EPOCHREALTIME, the CPU time of the command from bash's
// `times` (children's user and system time). The shim forks nothing of its
// own; bash starting adds a few milliseconds per invocation, on both sides.
func writeShim(tb testing.TB, dir, name, real, trace string) {
	tb.Helper()
	script := fmt.Sprintf(`#!/bin/bash
s=$EPOCHREALTIME
%[1]q "$@"
c=$?
e=$EPOCHREALTIME
times > %[3]q.$$
{ read -r _ _; read -r cu cs; } < %[3]q.$$
printf '%%s %%s %%s %%s %%s %%s\n' "$s" "$e" "$cu" "$cs" %[2]q "$1" >> %[3]q
exit $c
`, real, name, trace)
	if err := os.WriteFile(filepath.Join(dir, name), []byte(script), 0o755); err != nil {
		tb.Fatal(err)
	}
}

func readTrace(tb testing.TB, trace string) []traceEvent {
	tb.Helper()
	raw, err := os.ReadFile(trace)
	if err != nil {
		tb.Fatal(err)
	}
	parse := func(s string) time.Time {
		f, err := strconv.ParseFloat(s, 64)
		if err != nil {
			tb.Fatalf("trace: bad time %q", s)
		}
		sec := int64(f)
		return time.Unix(sec, int64((f-float64(sec))*1e9))
	}
	// bash's times prints 0m0.050s.
	cpu := func(s string) time.Duration {
		d, err := time.ParseDuration(s)
		if err != nil {
			tb.Fatalf("trace: bad CPU time %q", s)
		}
		return d
	}
	var out []traceEvent
	for _, line := range strings.Split(strings.TrimSpace(string(raw)), "\n") {
		f := strings.Fields(line)
		if len(f) < 5 {
			continue
		}
		name := f[4]
		if len(f) > 5 {
			name += " " + f[5]
		}
		out = append(out, traceEvent{start: parse(f[0]), end: parse(f[1]), cpu: cpu(f[2]) + cpu(f[3]), name: name})
	}
	slices.SortFunc(out, func(a, b traceEvent) int { return a.start.Compare(b.start) })
	return out
}

// within returns the events that started in [from, to].
func within(events []traceEvent, from, to time.Time) []traceEvent {
	var out []traceEvent
	for _, e := range events {
		if !e.start.Before(from) && !e.start.After(to) {
			out = append(out, e)
		}
	}
	return out
}

// BenchmarkRunTimeline shows where the time of a TRACKED run goes: git and
// tofu are replaced on the server's PATH by shims that log each
// invocation, and their durations are set beside the run's transitions and
// beside the bare sequence run through the same shim. It measures no
// target; it explains the end-to-end figure.
func BenchmarkRunTimeline(b *testing.B) {
	requireBench(b)
	n := envInt(b, "GANTRY_BENCH_TIMELINE_RUNS", 8)
	tofu := tofuBinary(b)
	gitBin, err := exec.LookPath("git")
	if err != nil {
		b.Fatal(err)
	}
	shims := b.TempDir()
	trace := filepath.Join(shims, "trace.log")
	writeShim(b, shims, "tofu", tofu, trace)
	writeShim(b, shims, "git", gitBin, trace)
	srv := startServer(b, serverConfig{bin: gantryBinary(b), workers: 2, path: shims})
	repo := makeRepo(b)
	bs := newBare(b, filepath.Join(shims, "tofu"))
	every := pollEvery(b)

	srv.deploy(b, "timeline-warmup", repo, every)
	bs.run(b)
	type window struct{ from, to time.Time }
	var runs []deployment
	var bares []window
	for i := range n {
		runs = append(runs, srv.deploy(b, fmt.Sprintf("timeline-%02d", i), repo, every))
		from := time.Now()
		bs.run(b)
		bares = append(bares, window{from, time.Now()})
	}
	events := readTrace(b, trace)

	// Per run: the time of each traced command (summed by name) and what
	// is left of the server-side time once git and tofu are taken out.
	names := []string{"git ls-remote", "git clone", "git rev-parse", "git checkout", "git log",
		"tofu init", "tofu plan", "tofu show", "tofu apply"}
	wall, cpu := map[string][]time.Duration{}, map[string][]time.Duration{}
	var other, lag, create, server []time.Duration
	for _, d := range runs {
		w, c := map[string]time.Duration{}, map[string]time.Duration{}
		var worker time.Duration // git and tofu run by the worker, after QUEUED
		queued, _ := enteredAt(d.run, apiv1.StateQueued)
		finished, _ := enteredAt(d.run, apiv1.StateFinished)
		for _, e := range within(events, d.started, d.seen) {
			w[e.name] += e.end.Sub(e.start)
			c[e.name] += e.cpu
			kind, _, _ := strings.Cut(e.name, " ")
			w[kind], c[kind] = w[kind]+e.end.Sub(e.start), c[kind]+e.cpu
			if e.start.After(queued) {
				worker += e.end.Sub(e.start)
			}
		}
		for _, name := range append(names, "git", "tofu") {
			wall["gantry "+name] = append(wall["gantry "+name], w[name])
			cpu["gantry "+name] = append(cpu["gantry "+name], c[name])
		}
		other = append(other, d.server-worker)
		lag = append(lag, d.seen.Sub(finished))
		create = append(create, d.create)
		server = append(server, d.server)
	}
	for _, win := range bares {
		w, c := map[string]time.Duration{}, map[string]time.Duration{}
		for _, e := range within(events, win.from, win.to) {
			w[e.name], c[e.name] = w[e.name]+e.end.Sub(e.start), c[e.name]+e.cpu
			w["tofu"], c["tofu"] = w["tofu"]+e.end.Sub(e.start), c["tofu"]+e.cpu
		}
		for _, name := range append(names, "tofu") {
			wall["bare "+name] = append(wall["bare "+name], w[name])
			cpu["bare "+name] = append(cpu["bare "+name], c[name])
		}
	}
	p50 := func(d []time.Duration) string { return ms(summarize(d).p50) }
	avg := func(d []time.Duration) string { return ms(summarize(d).avg) }
	row := func(label, key string, bare bool) {
		b1, b2 := "", ""
		if bare {
			b1, b2 = p50(wall["bare "+key]), avg(cpu["bare "+key])
		}
		note(b, "  %-44s %10s %10s %10s %10s", label, p50(wall["gantry "+key]), avg(cpu["gantry "+key]), b1, b2)
	}
	note(b, "where the time of a one-terraform_data TRACKED run goes (%d runs; git and tofu through timing shims):", n)
	note(b, "  %-44s %10s %10s %10s %10s", "", "gantry", "", "bare", "")
	note(b, "  %-44s %10s %10s %10s %10s", "", "wall p50", "CPU avg", "wall p50", "CPU avg")
	note(b, "  %-44s %10s", "POST /runs answered (includes git ls-remote)", p50(create))
	for _, name := range names {
		row(name, name, strings.HasPrefix(name, "tofu"))
	}
	row("all git commands", "git", false)
	row("all tofu commands", "tofu", true)
	note(b, "  %-44s %10s", "server-side QUEUED -> FINISHED", p50(server))
	note(b, "  %-44s %10s", "  of which not in git or tofu (Gantry itself)", p50(other))
	note(b, "  %-44s %10s", "FINISHED to seen by the client", p50(lag))

	// The timeline of the last run, as an example.
	last := runs[len(runs)-1]
	type line struct {
		at   time.Duration
		text string
	}
	var lines []line
	for _, t := range last.run.Transitions {
		lines = append(lines, line{t.At.Sub(last.started), "state " + t.To})
	}
	for _, e := range within(events, last.started, last.seen) {
		lines = append(lines, line{e.start.Sub(last.started), fmt.Sprintf("%s (%s)", e.name, ms(e.end.Sub(e.start)))})
	}
	lines = append(lines, line{last.create, "POST /runs answered"}, line{last.seen.Sub(last.started), "seen FINISHED"})
	slices.SortStableFunc(lines, func(a, b line) int { return int(a.at - b.at) })
	note(b, "timeline of run %s (ms from POST /runs sent):", last.run.ID)
	for _, l := range lines {
		note(b, "  %8.1f  %s", msf(l.at), l.text)
	}
	b.ReportMetric(msf(summarize(other).p50), "gantry-own-ms")
	hideNsPerOp(b)
}
