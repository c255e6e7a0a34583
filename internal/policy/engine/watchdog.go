package engine

import (
	"context"
	"errors"
	"fmt"
	"math"
	"runtime/debug"
	"runtime/metrics"
	"sync"
	"sync/atomic"
	"time"
)

// The bounded built-ins (limits.go) stop what one call allocates; the
// evaluator's own work (a comprehension over two ranges, a set built rule
// by rule) is bounded by the timeout only, and it allocates at about 170
// MB/s: a 45 s PLAN policy could take several GB and the process with it.
// So while policies run, a watchdog reads the heap every watchEvery; once
// it holds more than heapLimit (or 90 % of GOMEMLIMIT, when the server
// runs with a lower one), every evaluation that started before that
// reading is stopped with an error wrapping ErrTooLarge (they fail closed).
// The heap is the process's: an evaluation that ran beside the culprit is
// stopped too, which is the price of not losing the whole server.
var (
	// heapLimit is the heap size, live objects and garbage not yet
	// collected, at which running evaluations are stopped (3 GiB; atomic:
	// tests lower it while a watchdog may read it).
	heapLimit = func() *atomic.Uint64 { var v atomic.Uint64; v.Store(3 << 30); return &v }()
	// watchEvery is how often the heap is read while policies run.
	watchEvery = 25 * time.Millisecond
)

// errHeap is the cause given to the evaluations the watchdog stops.
var errHeap = errors.New("heap over its limit")

// watchdog keeps the cancel functions of the running evaluations and reads
// the heap while there are any.
var watchdog = struct {
	sync.Mutex
	next     int
	running  map[int]context.CancelCauseFunc
	watching bool // a watchHeap goroutine runs
}{running: map[int]context.CancelCauseFunc{}}

// watch registers an evaluation's cancel function until the returned
// function is called, starting the watchdog with the first one.
func watch(cancel context.CancelCauseFunc) (unwatch func()) {
	watchdog.Lock()
	defer watchdog.Unlock()
	id := watchdog.next
	watchdog.next++
	watchdog.running[id] = cancel
	if !watchdog.watching {
		watchdog.watching = true
		go watchHeap()
	}
	return func() {
		watchdog.Lock()
		defer watchdog.Unlock()
		delete(watchdog.running, id)
	}
}

// watchHeap reads the heap until no evaluation runs, stopping them all
// when it is over heapMax.
func watchHeap() {
	sample := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
	t := time.NewTicker(watchEvery)
	defer t.Stop()
	for range t.C {
		metrics.Read(sample)
		over := sample[0].Value.Kind() == metrics.KindUint64 && sample[0].Value.Uint64() > heapMax()
		watchdog.Lock()
		if len(watchdog.running) == 0 {
			watchdog.watching = false
			watchdog.Unlock()
			return
		}
		if over {
			for id, cancel := range watchdog.running {
				cancel(errHeap)
				delete(watchdog.running, id)
			}
		}
		watchdog.Unlock()
	}
}

// heapMax is the heap size the watchdog stops evaluations at: heapLimit, or
// 90 % of the process's memory limit (GOMEMLIMIT) when that is lower.
func heapMax() uint64 {
	max := heapLimit.Load()
	if soft := debug.SetMemoryLimit(-1); soft > 0 && soft < math.MaxInt64 && uint64(soft)/10*9 < max {
		max = uint64(soft) / 10 * 9
	}
	return max
}

// heapError is the error of an evaluation the watchdog stopped.
func heapError(name string) error {
	return fmt.Errorf("policy %s: stopped: the server's heap went over %s while it ran (%w)", name, byteSize(int64(heapMax())), ErrTooLarge)
}
