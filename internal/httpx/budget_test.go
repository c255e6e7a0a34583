package httpx_test

import (
	"context"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/gantry-iac/gantry/internal/errs"
	"github.com/gantry-iac/gantry/internal/httpx"
)

// acquireAsync starts an Acquire and returns a channel that gets its release
// once it is granted (or nil on error).
func acquireAsync(ctx context.Context, b *httpx.Budget, n int64) <-chan func() {
	got := make(chan func(), 1)
	go func() {
		release, err := b.Acquire(ctx, n)
		if err != nil {
			release = nil
		}
		got <- release
	}()
	return got
}

// waitWaiting waits until n requests wait on b (they queue at once: this
// bounds a goroutine's start, not the behaviour under test).
func waitWaiting(t *testing.T, b *httpx.Budget, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, w := b.Stats(); w == n {
			return
		}
		if time.Now().After(deadline) {
			_, w := b.Stats()
			t.Fatalf("%d requests waiting, want %d", w, n)
		}
		time.Sleep(time.Millisecond)
	}
}

func TestBudgetMakesTheRequestPastItWait(t *testing.T) {
	ctx := context.Background()
	b := httpx.NewBudget(100)
	var held []func()
	for range 3 {
		release, err := b.Acquire(ctx, 30)
		if err != nil {
			t.Fatal(err)
		}
		held = append(held, release)
	}
	if used, waiting := b.Stats(); used != 90 || waiting != 0 {
		t.Fatalf("Stats = %d, %d; want 90, 0", used, waiting)
	}
	fourth := acquireAsync(ctx, b, 30)
	waitWaiting(t, b, 1)
	select {
	case <-fourth:
		t.Fatal("the fourth request of 30 bytes got a budget of 100 with 90 held")
	default:
	}
	// A small one that would fit waits behind it: first come, first served
	// (the large one is not starved).
	small := acquireAsync(ctx, b, 5)
	waitWaiting(t, b, 2)
	held[0]()
	held[0]() // a second release is a no-op
	r4 := <-fourth
	if r4 == nil {
		t.Fatal("the fourth request failed")
	}
	r5 := <-small
	if r5 == nil {
		t.Fatal("the small request failed")
	}
	if used, waiting := b.Stats(); used != 95 || waiting != 0 {
		t.Fatalf("Stats = %d, %d; want 95, 0", used, waiting)
	}
	for _, r := range []func(){held[1], held[2], r4, r5} {
		r()
	}
	if used, _ := b.Stats(); used != 0 {
		t.Fatalf("used = %d after every release, want 0", used)
	}
}

func TestBudgetCutsAWeightAboveItsSize(t *testing.T) {
	b := httpx.NewBudget(100)
	release, err := b.Acquire(context.Background(), 1<<40)
	if err != nil {
		t.Fatal(err)
	}
	if used, _ := b.Stats(); used != 100 {
		t.Fatalf("used = %d, want the whole budget (100)", used)
	}
	release()
}

func TestBudgetWaitEndsWithTheRequest(t *testing.T) {
	b := httpx.NewBudget(10)
	release, err := b.Acquire(context.Background(), 10)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	got := make(chan error, 1)
	go func() {
		_, err := b.Acquire(ctx, 1)
		got <- err
	}()
	waitWaiting(t, b, 1)
	cancel()
	if err := <-got; !errs.Is(err, errs.Unavailable) {
		t.Fatalf("Acquire after its context ended = %v, want kind %s", err, errs.Unavailable)
	}
	if _, waiting := b.Stats(); waiting != 0 {
		t.Fatalf("%d requests still waiting, want 0", waiting)
	}
	release()
	if used, _ := b.Stats(); used != 0 {
		t.Fatalf("used = %d, want 0", used)
	}
}

func TestNilBudgetNeverWaits(t *testing.T) {
	var b *httpx.Budget
	release, err := b.Acquire(context.Background(), 1<<50)
	if err != nil {
		t.Fatal(err)
	}
	release()
}

func TestCheckLength(t *testing.T) {
	r := httptest.NewRequest("POST", "/x", strings.NewReader("0123456789"))
	if err := httpx.CheckLength(r, 10, "state", ""); err != nil {
		t.Fatalf("CheckLength at the limit = %v", err)
	}
	err := httpx.CheckLength(r, 9, "state", "raise it with --max-state-size")
	if !errs.Is(err, errs.TooLarge) || !strings.Contains(errs.Public(err), "state of 10 bytes is larger than the limit of 9 bytes: raise it with --max-state-size") {
		t.Fatalf("CheckLength past the limit = %v", err)
	}
}

// One holder may hold at most half the budget at once, unless it holds
// nothing else; a request over its holder's share waits without holding
// up other holders' requests behind it, and goes once its holder gives
// back enough.
func TestBudgetHolderShare(t *testing.T) {
	ctx := context.Background()
	b := httpx.NewBudget(100)
	relA, err := b.AcquireFor(ctx, "reader", 40)
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan struct{})
	var relA2 func()
	go func() {
		relA2, _ = b.AcquireFor(ctx, "reader", 20) // 60 > 50: over its share
		close(got)
	}()
	waitWaiting(t, b, 1)
	// Another holder's request behind it is not held up.
	relB, err := b.AcquireFor(ctx, "run", 30)
	if err != nil {
		t.Fatal(err)
	}
	select {
	case <-got:
		t.Fatal("the reader got 60 of a budget of 100 (its share is 50)")
	default:
	}
	relA()
	<-got
	if used, waiting := b.Stats(); used != 50 || waiting != 0 {
		t.Errorf("after the reader gave back 40: %d held, %d waiting; want 50, 0", used, waiting)
	}
	relA2()
	relB()
	// A holder that holds nothing may take more than its share: alone.
	rel, err := b.AcquireFor(ctx, "reader", 80)
	if err != nil {
		t.Fatal(err)
	}
	rel()
	if used, waiting := b.Stats(); used != 0 || waiting != 0 {
		t.Errorf("at the end: %d held, %d waiting; want none", used, waiting)
	}
}
