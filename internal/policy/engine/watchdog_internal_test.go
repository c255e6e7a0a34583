package engine

import (
	"errors"
	"runtime"
	"runtime/metrics"
	"strings"
	"testing"
	"time"
)

// A policy whose own comprehensions grow the heap without bound (no
// built-in call is large: numbers.range of 3,000) is stopped by the
// watchdog once the heap passes its limit, with an error wrapping
// ErrTooLarge, long before its timeout; the next evaluation runs normally.
// Without the watchdog it runs to its timeout, taking hundreds of MB.
func TestWatchdogStopsAPolicyGrowingTheHeap(t *testing.T) {
	runtime.GC()
	sample := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
	metrics.Read(sample)
	oldLimit, oldTimeout := heapLimit.Load(), Timeouts[TypePlan]
	heapLimit.Store(sample[0].Value.Uint64() + 64<<20)
	// The timeout bounds what the test costs if the watchdog fails (about
	// 170 MB/s): the test then fails on the error, not on memory.
	Timeouts[TypePlan] = 4 * time.Second
	t.Cleanup(func() { heapLimit.Store(oldLimit); Timeouts[TypePlan] = oldTimeout })

	start := time.Now()
	_, err := evalPlan(t, `pairs := [[i, j, "x"] | some i in numbers.range(1, 3000); some j in numbers.range(1, 3000)]

deny contains "many" if { count(pairs) > 0 }`, nil)
	took := time.Since(start)
	if !errors.Is(err, ErrTooLarge) || !strings.Contains(err.Error(), "heap went over") {
		t.Fatalf("err = %v after %s; want the watchdog's ErrTooLarge", err, took)
	}
	if took > 3*time.Second {
		t.Errorf("stopped after %s: the watchdog reads the heap every %s", took, watchEvery)
	}

	runtime.GC()
	metrics.Read(sample)
	heapLimit.Store(sample[0].Value.Uint64() + 64<<20)
	res, err := evalPlan(t, `deny contains "small" if { count([x | some x in numbers.range(1, 10)]) == 10 }`, nil)
	if err != nil || len(res.Decision.Deny) != 1 {
		t.Errorf("the next evaluation: %+v, %v", res.Decision, err)
	}
}
